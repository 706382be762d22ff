"""Pure helpers of the Airflow layer: job ids, sync locations, cluster references, templating."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.jobs import JOB_ID
from airflow_provider_sky.utils.cluster_ref import parse_cluster_ref
from airflow_provider_sky.utils.ids import job_attempt, job_id_for
from airflow_provider_sky.utils.targets import Location, check_pair, check_patterns, parse_location
from airflow_provider_sky.utils.templating import is_templated

HANDLE = {
    "cluster_name": "c1",
    "cloud": "local",
    "nodes": [{"rank": 0, "node_id": "c1-0", "ip": "127.0.0.1", "ssh_port": 2222}],
}


@given(st.text(), st.text(), st.text(), st.one_of(st.none(), st.integers(-1, 10**6)), st.integers(1, 10**4))
def test_job_ids_are_valid_deterministic_and_carry_the_attempt(dag_id, run_id, task_id, map_index, attempt) -> None:
    job_id = job_id_for(dag_id, run_id, task_id, map_index, attempt)
    assert JOB_ID.match(job_id)
    assert job_id == job_id_for(dag_id, run_id, task_id, map_index, attempt)
    assert job_attempt(job_id) == attempt


def test_job_ids_differ_per_task_instance_and_attempt() -> None:
    base = job_id_for("d", "r", "t", None)
    assert base == job_id_for("d", "r", "t", -1)
    others = {
        job_id_for("d", "r", "t", 0),
        job_id_for("d", "r2", "t", None),
        job_id_for("d", "r", "t2", None),
        job_id_for("d2", "r", "t", None),
        job_id_for("d", "r", "t", None, 2),
    }
    assert base not in others and len(others) == 5
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert job_id_for("ab", "c", "t", None) != job_id_for("a", "bc", "t", None)
    with pytest.raises(ValueError, match="attempt"):
        job_id_for("d", "r", "t", None, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cluster:~/data", Location(True, "~/data")),
        ("cluster[3]:/tmp/x", Location(True, "/tmp/x", 3)),
        ("cluster:a:b", Location(True, "a:b")),
        ("/abs/path", Location(False, "/abs/path")),
        ("rel/path", Location(False, "rel/path")),
        ("file:///srv/data%20set", Location(False, "/srv/data set")),
        ("file://localhost/srv", Location(False, "/srv")),
        ("s3://bucket/run-1/data", Location(False, "run-1/data", None, "bucket")),
        ("S3://bucket", Location(False, "", None, "bucket")),
        ("s3://my.bucket-1/", Location(False, "", None, "my.bucket-1")),
    ],
)
def test_parse_location(text: str, expected: Location) -> None:
    assert parse_location(text, "source") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gs://bucket", "source: scheme 'gs'"),
        ("az://container/x", "source: scheme 'az'"),
        ("s3://", "source: 's3://' names no bucket"),
        ("s3:///key", "source: 's3:///key' names no bucket"),
        ("s3://Bad_Bucket/k", "source: invalid S3 bucket name 'Bad_Bucket'"),
        ("cluster[x]:/p", "source: node rank 'x'"),
        ("cluster[-1]:/p", "source: node rank '-1'"),
        ("cluster:", "source: 'cluster:' has no path"),
        ("", "source: expected"),
        ("file://host/p", "source: file URL 'file://host/p' names host"),
    ],
)
def test_parse_location_errors_name_the_parameter(text: str, message: str) -> None:
    with pytest.raises(SkyConfigError) as info:
        parse_location(text, "source")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_parse_location_s3_describes_itself() -> None:
    loc = parse_location("s3://bucket/a/b", "destination")
    assert loc.on_s3 and not loc.on_cluster and loc.describe() == "s3://bucket/a/b"
    assert not parse_location("cluster:x", "source").on_s3


def test_check_pair_needs_a_cluster_or_s3_side_and_at_most_one_cluster_side() -> None:
    s3 = Location(False, "k", None, "b")
    check_pair(Location(False, "a"), Location(True, "b"))
    check_pair(Location(True, "a", 0), Location(False, "b"))
    for pair in ((Location(False, "a"), s3), (s3, Location(False, "a")), (s3, s3), (s3, Location(True, "b")),
                 (Location(True, "b", 1), s3)):
        check_pair(*pair)
    for pair in ((Location(True, "a"), Location(True, "b")), (Location(False, "a"), Location(False, "b"))):
        with pytest.raises(SkyConfigError, match="^destination: "):
            check_pair(*pair)


def test_check_patterns() -> None:
    assert check_patterns(None, "include") == []
    assert check_patterns("*.csv", "include") == ["*.csv"]
    assert check_patterns(["a", "b"], "exclude") == ["a", "b"]
    with pytest.raises(SkyConfigError, match="^exclude: "):
        check_patterns([1], "exclude")


def test_parse_cluster_ref_forms() -> None:
    assert parse_cluster_ref("train-1").name == "train-1"
    assert parse_cluster_ref("train-1").handle is None
    ref = parse_cluster_ref(HANDLE)
    assert ref.name == "c1" and ref.handle is not None and ref.handle["nodes"][0]["ssh_port"] == 2222
    # A handle rendered through a plain Jinja template arrives as text.
    assert parse_cluster_ref(str(HANDLE)).handle == ref.handle
    import json

    assert parse_cluster_ref(json.dumps(HANDLE)).handle == ref.handle


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "cluster: missing"),
        ("", "cluster: missing"),
        ("-bad", "cluster: invalid value '-bad'"),
        (42, "cluster: expected the launch task's output"),
        ({"cluster_name": "c"}, "cluster: malformed cluster handle: missing key(s) cloud, nodes"),
        ({**HANDLE, "nodes": []}, "cluster: malformed cluster handle.nodes"),
        ({**HANDLE, "nodes": [{"rank": 0}]}, "cluster: malformed cluster handle.nodes[0]"),
        ({**HANDLE, "extra": 1}, "cluster: malformed cluster handle: unknown key(s) extra"),
        ("{not a dict", "cluster: malformed cluster handle text"),
    ],
)
def test_parse_cluster_ref_errors_are_one_line_naming_the_parameter(value, message: str) -> None:
    with pytest.raises(SkyConfigError) as info:
        parse_cluster_ref(value)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_is_templated() -> None:
    assert is_templated("a-{{ ds }}") and is_templated({"x": ["{% if %}"]})
    assert not is_templated("plain") and not is_templated({"cpus": 2}) and not is_templated(None)

    class Arg:
        def resolve(self) -> None: ...

    assert is_templated(Arg()) and not is_templated(Arg)
