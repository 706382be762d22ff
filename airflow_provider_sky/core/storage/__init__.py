"""Incremental, parallel sync between local paths, S3 and cluster nodes, usable without Airflow.

.. code-block:: python

    from airflow_provider_sky.core.storage import sync

    sync("data/", "s3://bucket/run-1/data", session=boto3_session)              # local -> S3
    sync("s3://bucket/run-1/data", "cluster:~/data", session=s, cluster=c)     # S3 -> every node
    sync("cluster[0]:~/out", "s3://bucket/run-1/out", session=s, cluster=c)    # node 0 -> S3

Locations: a local path, ``s3://bucket/prefix``, ``cluster:PATH`` (every node as destination,
node 0 as source) or ``cluster[RANK]:PATH``. A directory's (or prefix's) contents go into the
destination directory (prefix). S3 credentials come only from the ``boto3.Session`` the caller
passes (the Airflow layer builds it from its AWS connection).

What is skipped (``compare``):

* ``"mtime"`` (default, needs only listings): a destination file with the same size whose
  modification time matches -- downloads set the file's mtime to the object's ``LastModified``,
  uploads are skipped when the file is not newer than the object, S3-to-S3 copies when the ETags
  match or the copy is not older than its source.
* ``"checksum"``: the same size and the same MD5 (a multipart ETag is recomputed from the file with
  the engine's part size); local files only (cluster legs always use ``mtime``).

Two ways between S3 and a cluster (``cluster_mode``):

* ``"worker"`` (default): this process streams objects between S3 and the nodes over SSH (SFTP).
  No credentials reach the nodes and nothing needs to be installed there; every byte passes
  through the worker, once per object for any number of nodes.
* ``"nodes"``: each node runs ``aws s3 sync`` itself with short-lived credentials (STS session
  credentials, passed on the command's standard input -- never in its command line, environment
  listing or logs; ``on_secret`` receives each secret so a caller can mask it). Faster for big data
  (the nodes pull in parallel, the worker moves nothing) but needs the AWS CLI on the nodes.

Local <-> cluster legs reuse :mod:`airflow_provider_sky.core.transfer` (rsync or SFTP).
"""

from __future__ import annotations

from airflow_provider_sky.core.storage.engine import (
    ClusterLocation,
    LocalLocation,
    S3Location,
    SyncStats,
    parse_location,
    sync,
)

__all__ = ["ClusterLocation", "LocalLocation", "S3Location", "SyncStats", "parse_location", "sync"]
