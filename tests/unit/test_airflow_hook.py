"""SkyHook: the ``sky`` connection turned into core credentials (connections from the environment)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.keys import generate_private_key
from airflow_provider_sky.hooks import SkyHook


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "sky", **fields}))


def test_extras_give_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_private_key()
    extra = {"private_key": key, "ssh_user": "ubuntu", "cloud": "ssh", "hosts": "10.0.0.5, bob@10.0.0.6:2222\n10.0.0.7"}
    set_conn(monkeypatch, "sky_a", extra=extra)
    creds = SkyHook("sky_a").get_credentials()
    assert creds.private_key == key and creds.ssh_user == "ubuntu" and creds.cloud == "ssh"
    assert creds.hosts == ["10.0.0.5", "bob@10.0.0.6:2222", "10.0.0.7"]
    assert creds.cloud_settings("ssh") == {"hosts": creds.hosts} and creds.cloud_settings("local") == {}
    assert "PRIVATE" not in repr(creds) and "<hidden>" in repr(creds)
    assert SkyHook("sky_a").test_connection() == (True, "cloud 'ssh': credentials are usable")


def test_password_and_login_are_the_fallbacks_and_hosts_may_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_private_key()
    # Keys pasted into one-line fields often arrive with literal "\n".
    set_conn(
        monkeypatch, "sky_b", login="root", password=key.replace("\n", "\\n"), extra={"hosts": '["h1", "h2:2200"]'}
    )
    creds = SkyHook("sky_b").get_credentials()
    assert creds.private_key == key and creds.ssh_user == "root" and creds.cloud == "local"
    assert creds.hosts == ["h1", "h2:2200"]


def test_a_missing_connection_falls_back_to_the_local_key_only() -> None:
    hook = SkyHook("sky_does_not_exist")
    creds = hook.get_credentials()
    assert creds.private_key is None and creds.cloud == "local"
    with pytest.raises(SkyConfigError, match=r"^sky_conn_id: connection 'sky_does_not_exist' gives no SSH private key"):
        hook.get_cluster("c", "ssh")


def test_a_bad_key_fails_the_connection_test(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "sky_c", extra={"private_key": "not a key"})
    ok, message = SkyHook("sky_c").test_connection()
    assert not ok and message.startswith("ssh private key: cannot parse it")
