-- One database per Doorstep service (docker-compose.postgres.yml mounts this file into
-- /docker-entrypoint-initdb.d). The postgres image runs it once, as POSTGRES_USER, when it
-- initialises an empty data volume; it does not run again on later starts, so a database
-- added here later must be created by hand in an existing volume.
-- Each service must own its database: replicas of one service share it, services never do.
CREATE DATABASE doorstep_accounts;
CREATE DATABASE doorstep_scheduling;
CREATE DATABASE doorstep_visits;
