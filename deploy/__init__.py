"""Deploy files (nginx, Prometheus) and the local cluster that runs them on one machine (deploy.local_cluster)."""
