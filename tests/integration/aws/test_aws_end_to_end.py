"""The whole path on the emulator: EC2 nodes with real SSH, S3 data in, a job, results out, teardown."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sky.core import Cluster
from tests.integration.aws.conftest import AwsBed
from tests.integration.aws.test_s3_sync import AWS_CLI, Bucket
from tests.testbed import MotoServer, TcpForwarder


@pytest.mark.parametrize("mode", ["worker", "nodes"])
def test_ec2_nodes_s3_in_job_s3_out(aws: AwsBed, moto_server: MotoServer, ssh_key: str, tmp_path: Path,
                                    mode: str) -> None:
    aws.require_hosts()
    bucket = Bucket(moto_server)
    # The nodes live in their own network namespaces: they reach the loopback emulator through the bridge.
    forwarder = TcpForwarder(str(aws.network[1]), int(aws.endpoint.rsplit(":", 1)[1])).start()
    try:
        for shard in range(4):
            bucket.client.put_object(Bucket=bucket.name, Key=f"inputs/shard-{shard}.txt", Body=f"{shard}\n" * 10)
        cluster = Cluster.launch(
            "e2e", cloud="aws", resources={"instance_type": "m5.large", "image_id": aws.image_id}, num_nodes=2,
            ssh_private_key=ssh_key, ssh_user="root", **aws.settings(),
        )
        try:
            cluster.wait_ssh_ready(timeout=30)
            options = {"session": aws.session, "endpoint_url": aws.endpoint, "cluster": cluster,
                       "cluster_mode": mode, "node_aws_command": AWS_CLI,
                       "node_endpoint_url": f"http://{forwarder.address}"}
            from airflow_provider_sky.core.storage import sync

            pulled = sync(bucket.url("inputs"), "cluster:~/inputs", **options)
            assert pulled.files_copied == 8
            job = cluster.submit(
                run="mkdir -p ~/results && cat ~/inputs/shard-$SKYPILOT_NODE_RANK.txt | wc -l "
                "> ~/results/rank-$SKYPILOT_NODE_RANK.txt"
            )
            assert cluster.wait_job(job, timeout=60, poll_interval=0.1).state.name == "SUCCEEDED"
            for rank in range(2):
                pushed = sync(f"cluster[{rank}]:~/results", bucket.url("results"), **options)
                assert pushed.files_copied == 1
            assert bucket.objects("results/") == {"rank-0.txt": b"10\n", "rank-1.txt": b"10\n"}
        finally:
            cluster.down()
        assert aws.live() == []
    finally:
        forwarder.close()
        bucket.close()
