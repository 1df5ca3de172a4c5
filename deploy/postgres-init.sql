-- docker-compose: runs once when the Postgres data volume is empty (docker-entrypoint-initdb.d),
-- as POSTGRES_USER, who then owns both databases. Dagster's own database (POSTGRES_DB=dagster)
-- is created by the image; this adds the MLflow tracking server's.
CREATE DATABASE mlflow;
