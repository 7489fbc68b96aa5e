"""Connection strings: every canonical form the reference accepts, SQLAlchemy URLs, and
errors that never repeat a password."""

from __future__ import annotations

import pytest

from asherah import Config, ConfigError
from asherah_metastore_sql import SqlMetastoreOptions, parse_connection_string
from asherah_metastore_sql._dsn import parse_go_duration
from asherah_metastore_sql._options import options_from_config

SECRET = "S3cr3t-Pa55/@?x"


def test_postgres_urls_with_libpq_parameters() -> None:
    for scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        target = parse_connection_string(
            f"{scheme}://app:p%40ss@db.example:6543/keys?sslmode=verify-full&options=-csearch_path%3Ds1"
        )
        assert target.backend == "postgres"
        assert (target.username, target.password) == ("app", "p@ss")
        assert (target.host, target.port, target.database) == ("db.example", 6543, "keys")
        assert target.params == {"sslmode": "verify-full", "options": "-csearch_path=s1"}


def test_mysql_url_parameters() -> None:
    target = parse_connection_string(
        "mysql://app:pw@db:3307/keys?ssl-mode=VERIFY_CA&ssl-ca=/etc/ca.pem&read_timeout=5&charset=utf8mb4"
    )
    assert target.backend == "mysql"
    assert (target.host, target.port, target.database) == ("db", 3307, "keys")
    assert target.tls_mode == "verify-ca"
    assert target.tls_ca_file == "/etc/ca.pem"
    assert target.params == {"read_timeout": 5.0, "charset": "utf8mb4"}
    assert parse_connection_string("mysql://app@db/keys").port == 3306
    assert parse_connection_string("mariadb+pymysql://app@db/keys").backend == "mysql"


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "user:pa:ss@tcp(db.example:3307)/keys?parseTime=true&loc=UTC&charset=utf8mb4",
            ("user", "pa:ss", "db.example", 3307, "keys", None),
        ),
        ("root:@tcp(127.0.0.1)/test", ("root", None, "127.0.0.1", 3306, "test", None)),
        (
            "u:p@w/d@tcp([::1]:3310)/db?tls=skip-verify",
            ("u", "p@w/d", "::1", 3310, "db", "require"),
        ),
        ("u@tcp(h:1)/db?tls=false", ("u", None, "h", 1, "db", "disable")),
        ("u@tcp(h:1)/db?tls=true", ("u", None, "h", 1, "db", "verify-full")),
        ("u@tcp(h:1)/db?tls=preferred", ("u", None, "h", 1, "db", "verify-full")),
    ],
)
def test_go_dsn(dsn: str, expected: tuple[object, ...]) -> None:
    target = parse_connection_string(dsn)
    assert target.backend == "mysql"
    got = (target.username, target.password, target.host, target.port, target.database)
    assert (*got, target.tls_mode) == expected


def test_go_dsn_timeouts_are_go_durations() -> None:
    target = parse_connection_string("u@tcp(h)/db?timeout=1m30s&readTimeout=500ms&writeTimeout=2s")
    assert target.params == {"connect_timeout": 90.0, "read_timeout": 0.5, "write_timeout": 2.0}
    assert parse_go_duration("1h") == 3600
    for bad in ("", "10", "-1s", "1d", "s"):
        with pytest.raises(ConfigError):
            parse_go_duration(bad)


def test_sqlite_forms_keep_the_reference_path() -> None:
    # The reference strips "sqlite://" and uses the rest as the path (and its drift identity).
    assert parse_connection_string("sqlite:///tmp/k.db").path == "/tmp/k.db"
    assert parse_connection_string("sqlite://rel.db").path == "rel.db"
    assert parse_connection_string("keys.db", "sqlite").path == "keys.db"
    assert parse_connection_string("sqlite://keys.db", "sqlite").path == "keys.db"
    assert parse_connection_string(":memory:", "sqlite").path == ":memory:"
    # SQLAlchemy's own form keeps SQLAlchemy's meaning (three slashes: relative).
    assert parse_connection_string("sqlite+pysqlite:///rel.db").path == "rel.db"
    assert parse_connection_string("sqlite+pysqlite:////abs/k.db").path == "/abs/k.db"
    assert parse_connection_string("sqlite+pysqlite://").path == ":memory:"


def test_scheme_less_strings_need_the_db_type() -> None:
    assert parse_connection_string("app:pw@db:3306/keys", "mysql").backend == "mysql"
    target = parse_connection_string("app@db:5432/keys", "postgresql")
    assert (target.backend, target.host, target.database) == ("postgres", "db", "keys")
    # A scheme wins over the hint, as in the reference.
    assert parse_connection_string("postgres://a@h/d", "mysql").backend == "postgres"


@pytest.mark.parametrize(
    "value",
    [
        f"app:{SECRET}@db/keys",
        f"oracle://app:{SECRET}@db/keys",
        f"postgresql+asyncpg://app:{SECRET}@db/keys",
        f"mysql://app:{SECRET}@db/keys?unknownParam=1",
        f"app:{SECRET}@unix(/tmp/s)/keys?tcp(",
        f"mysql://app:{SECRET}@db/keys?ssl-mode=sometimes",
    ],
)
def test_bad_strings_are_config_errors_without_the_password(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_connection_string(value)
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="connection") as validation:
        SqlMetastoreOptions(connection_string=value)
    assert SECRET not in str(validation.value)
    assert SECRET not in repr(validation.value)


def test_unrecognised_string_gives_the_reference_hint() -> None:
    with pytest.raises(ConfigError, match="Set SQLMetastoreDBType to 'mysql' or 'postgres'"):
        parse_connection_string("foo:bar@blah")


def test_canonical_config_keys_map_to_options() -> None:
    base = {"ServiceName": "s", "ProductID": "p", "KMS": "static"}
    cfg = Config.model_validate(
        {
            **base,
            "Metastore": "rdbms",
            "ConnectionString": f"app:{SECRET}@db:3306/keys",
            "SQLMetastoreDBType": "MySQL",
            "ReplicaReadConsistency": "global",
            "PoolMaxOpen": 7,
            "PoolMaxIdle": 3,
            "PoolMaxLifetime": 60,
            "PoolMaxIdleTime": 30,
        }
    )
    options = SqlMetastoreOptions.model_validate(options_from_config(cfg))
    assert options.db_type == "mysql"
    assert options.target().backend == "mysql"
    assert (options.pool_max_open, options.pool_max_idle) == (7, 3)
    assert (options.pool_max_lifetime, options.pool_max_idle_time) == (60, 30)
    assert options.replica_read_consistency == "global"
    assert SECRET not in repr(options)
    # Metastore = "sqlite" makes the string a path whatever SQLMetastoreDBType says.
    cfg = Config.model_validate(
        {**base, "Metastore": "SQLite", "ConnectionString": "k.db", "SQLMetastoreDBType": "mysql"}
    )
    assert SqlMetastoreOptions.model_validate(options_from_config(cfg)).target().path == "k.db"
    for metastore, backend in (("postgres", "postgres"), ("mysql", "mysql")):
        cfg = Config.model_validate({**base, "Metastore": metastore, "ConnectionString": "a@h/d"})
        assert (
            SqlMetastoreOptions.model_validate(options_from_config(cfg)).target().backend == backend
        )


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="expected eventual, global, or session"):
        SqlMetastoreOptions(
            connection_string="postgres://a@h/d", replica_read_consistency="Session"
        )
    for bad_table in ("a.b.c", "drop table x", "1abc", ""):
        with pytest.raises(ValueError, match="table"):
            SqlMetastoreOptions(connection_string="postgres://a@h/d", table_name=bad_table)
    assert (
        SqlMetastoreOptions(connection_string="postgres://a@h/d", table_name="s1.keys").table_name
        == "s1.keys"
    )
    with pytest.raises(ValueError, match="time zone"):
        SqlMetastoreOptions(connection_string="postgres://a@h/d", time_zone="UTC'; DROP")
    with pytest.raises(ValueError, match="extra"):
        SqlMetastoreOptions.model_validate({"connection_string": "postgres://a@h/d", "bogus": 1})
