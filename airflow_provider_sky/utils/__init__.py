"""Pure helpers shared by hooks, operators, sensors and triggers (no Airflow, no paramiko)."""
