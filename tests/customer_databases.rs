//! Customer databases on the real PostgreSQL and MariaDB servers.
