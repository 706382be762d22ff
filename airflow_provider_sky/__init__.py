"""Apache Airflow provider that runs compute clusters (local, SSH pool, AWS, GCP, Kubernetes) as DAG tasks."""

__version__ = "0.1.0"
