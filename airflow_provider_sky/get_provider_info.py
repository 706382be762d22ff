"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

Kept free of imports: Airflow calls it while discovering providers, before any DAG is parsed.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-sky",
        "name": "Sky",
        "description": "Run a compute cluster's whole lifecycle (launch, SSH-ready, sync, run, teardown) as tasks.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Sky",
                "external-doc-url": "https://github.com/skypilot-org/skypilot",
                "tags": ["compute"],
            }
        ],
        "hooks": [{"integration-name": "Sky", "python-modules": ["airflow_provider_sky.hooks.sky"]}],
        "operators": [
            {
                "integration-name": "Sky",
                "python-modules": [
                    "airflow_provider_sky.operators.launch",
                    "airflow_provider_sky.operators.exec",
                    "airflow_provider_sky.operators.sync",
                    "airflow_provider_sky.operators.teardown",
                ],
            }
        ],
        "sensors": [{"integration-name": "Sky", "python-modules": ["airflow_provider_sky.sensors.ssh_ready"]}],
        "triggers": [
            {
                "integration-name": "Sky",
                "python-modules": [
                    "airflow_provider_sky.triggers.ssh_ready",
                    "airflow_provider_sky.triggers.job",
                    "airflow_provider_sky.triggers.aws_launch",
                ],
            }
        ],
        "extra-links": [
            "airflow_provider_sky.links.cluster.SkyClusterLink",
            "airflow_provider_sky.links.ec2.Ec2ConsoleLink",
        ],
        "connection-types": [
            {
                "connection-type": "sky",
                "hook-class-name": "airflow_provider_sky.hooks.sky.SkyHook",
                "hook-name": "Sky",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login", "password", "extra"],
                    "relabeling": {},
                    "placeholders": {},
                },
                "conn-fields": {
                    "private_key": {
                        "label": "SSH private key",
                        "description": "Unencrypted OpenSSH or PEM private key used to log in to every node. "
                        "Optional for the local cloud (a key is generated once under SKY_AIRFLOW_HOME).",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "ssh_user": {
                        "label": "SSH user",
                        "description": "Login user where the cloud does not fix it (SSH pool hosts).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "cloud": {
                        "label": "Default cloud",
                        "description": "Cloud used when an operator is given a cluster name only "
                        "(local, ssh, or a cloud added by a later release).",
                        "schema": {"type": ["string", "null"], "default": "local"},
                    },
                    "hosts": {
                        "label": "SSH-pool hosts",
                        "description": "For cloud 'ssh': comma- or newline-separated [user@]host[:port] entries.",
                        "schema": {"type": ["string", "null"], "format": "multiline"},
                    },
                    "cloud_conn_id": {
                        "label": "Cloud connection id",
                        "description": "Airflow connection holding the cloud account's credentials (AWS, GCP, ...).",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
    }
