"""What lands in the table: ``created`` encodings, column types, the guard row, listing.

Rows written with the reference's exact SQL (spec §3.1) must be found by this driver and the
other way round, whatever the ``key_record`` column type.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sql_testlib import open_metastore, record, unique

from asherah import EnvelopeKeyRecord, KeyMeta, MetastoreError
from asherah_metastore_sql import SqlMetastore, mysql_created

MYSQL_VECTORS = {
    0: "1970-01-01 00:00:00",
    946684800: "2000-01-01 00:00:00",
    1705325400: "2024-01-15 13:30:00",
    1709208000: "2024-02-29 12:00:00",
    1704067199: "2023-12-31 23:59:59",
    1773320280: "2026-03-12 12:58:00",
}

#: The reference's guard row for svc/prod on SQLite file /tmp/sqlexp/a.db, as it wrote it.
REFERENCE_GUARD_ID = (
    "__asherah_internal_config_drift_guard_v1__:P4Box1cXU9ICNy3lMjV2RM_mKi3TyS-zYHPowt-w2-Y"
)
REFERENCE_GUARD_JSON = (
    '{"Created":946684800,"Key":"eyJzY2hlbWFfdmVyc2lvbiI6MSwic2VydmljZV9uYW1lIjoic3ZjIiwicHJvZHVj'
    "dF9pZCI6InByb2QiLCJyZWdpb25fc3VmZml4X2VuYWJsZWQiOmZhbHNlLCJlZmZlY3RpdmVfcmVnaW9uX3N1ZmZpeCI6"
    "bnVsbCwia2V5X2lkX2Zvcm1hdF92ZXJzaW9uIjoxLCJhZWFkX2FsZ29yaXRobSI6IkFFUy0yNTYtR0NNIiwiZGF0YV9y"
    "b3dfcmVjb3JkX2Zvcm1hdCI6ImFzaGVyYWgtanNvbi12MSIsIm1ldGFzdG9yZV9pZGVudGl0eSI6eyJraW5kIjoic3Fs"
    'aXRlIiwicGF0aCI6Ii90bXAvc3FsZXhwL2EuZGIifSwia21zX2lkZW50aXR5Ijp7ImtpbmQiOiJzdGF0aWMifX0="}'
)

#: The reference's own INSERT for each backend (spec §3.1), with SQLAlchemy bind names.
REFERENCE_INSERT = {
    "sqlite": "INSERT OR IGNORE INTO {t}(id, created, key_record) "
    "VALUES (:id, datetime(:created, 'unixepoch'), :key_record)",
    "mysql": "INSERT IGNORE INTO {t}(id, created, key_record) VALUES(:id, :created, :key_record)",
    "postgres": "INSERT INTO {t}(id, created, key_record) "
    "VALUES (:id, to_timestamp(:created), CAST(:key_record AS JSONB)) ON CONFLICT DO NOTHING",
}


def reference_insert(metastore: SqlMetastore, key_id: str, created: int, text: str) -> None:
    """Write a row exactly as the reference would (its SQL, its bound types)."""
    bound: object = {
        "sqlite": created,
        "mysql": mysql_created(created),
        "postgres": float(created),
    }[metastore.backend]
    sql = REFERENCE_INSERT[metastore.backend].format(t=metastore.table_name)
    with metastore.engine.connect() as conn:
        conn.execute(sa.text(sql), {"id": key_id, "created": bound, "key_record": text})


def raw_created(metastore: SqlMetastore, key_id: str) -> object:
    with metastore.engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT created FROM {metastore.table_name} WHERE id = :id"),  # noqa: S608
            {"id": key_id},
        ).scalar_one()


def test_mysql_created_vectors() -> None:
    for created, expected in MYSQL_VECTORS.items():
        assert mysql_created(created) == expected
    assert mysql_created(-1) == "1969-12-31 23:59:59"


def test_mysql_vectors_land_as_these_strings(own_table: Callable[..., SqlMetastore]) -> None:
    metastore = own_table("mysql", create_schema=True)
    for created, expected in MYSQL_VECTORS.items():
        if created == 0:
            continue  # outside MySQL's TIMESTAMP range (1970-01-01 00:00:01 ..)
        key_id = unique("_IK_vec_")
        assert metastore.store(key_id, created, record(created))
        with metastore.engine.connect() as conn:
            text = conn.execute(
                sa.text(f"SELECT CAST(created AS CHAR) FROM {metastore.table_name} WHERE id = :id"),  # noqa: S608
                {"id": key_id},
            ).scalar_one()
        assert text == expected
        assert metastore.load(key_id, created) == record(created)


def test_created_column_holds_the_reference_encoding(metastore: SqlMetastore, backend: str) -> None:
    key_id = unique("_IK_enc_")
    assert metastore.store(key_id, 1705325400, record(1705325400))
    value = raw_created(metastore, key_id)
    if backend == "sqlite":
        assert value == "2024-01-15 13:30:00"  # TEXT, as datetime(?, 'unixepoch') makes it
    else:
        assert value == dt.datetime(2024, 1, 15, 13, 30)  # a UTC wall time


def test_rows_written_by_the_reference_sql_are_found(metastore: SqlMetastore) -> None:
    key_id = unique("_IK_ref_")
    for created in (1705325400, 1705325460):
        reference_insert(metastore, key_id, created, record(created, created % 7).to_json())
    assert metastore.load(key_id, 1705325400) == record(1705325400, 1705325400 % 7)
    latest = metastore.load_latest(key_id)
    assert latest is not None
    assert latest.created == 1705325460
    # And a row this driver wrote is a duplicate to the reference's INSERT.
    ours = unique("_IK_ours_")
    assert metastore.store(ours, 1705325400, record(1705325400, 1))
    reference_insert(metastore, ours, 1705325400, record(1705325400, 2).to_json())
    assert metastore.load(ours, 1705325400) == record(1705325400, 1)


def test_reference_guard_row_is_readable(metastore: SqlMetastore) -> None:
    key_id = REFERENCE_GUARD_ID + unique("-")
    reference_insert(metastore, key_id, 946684800, REFERENCE_GUARD_JSON)
    guard = metastore.load(key_id, 946684800)
    assert guard is not None
    assert guard.created == 946684800
    assert guard.parent_key_meta is None
    snapshot = json.loads(guard.encrypted_key)
    assert snapshot["metastore_identity"] == {"kind": "sqlite", "path": "/tmp/sqlexp/a.db"}
    assert snapshot["kms_identity"] == {"kind": "static"}


def test_drift_identity(metastore: SqlMetastore, backend: str, connection_string: str) -> None:
    if backend == "sqlite":
        assert metastore.drift_identity() == {
            "kind": "sqlite",
            "path": connection_string.removeprefix("sqlite://"),
        }
    else:
        assert metastore.drift_identity() == {"kind": backend}


def test_upsert_overwrites_and_keeps_created(metastore: SqlMetastore, backend: str) -> None:
    key_id = unique("__guard_")
    first = EnvelopeKeyRecord(946684800, b'{"a":1}')
    assert metastore.store(key_id, 946684800, first)
    metastore.upsert(key_id, 946684800, EnvelopeKeyRecord(946684800, b'{"a":2}'))
    metastore.upsert(unique("__guard_new_"), 946684800, first)  # inserts when absent
    loaded = metastore.load(key_id, 946684800)
    assert loaded is not None
    assert loaded.encrypted_key == b'{"a":2}'
    assert metastore.store(key_id, 946684800, first) is False
    assert raw_created(metastore, key_id) in ("2000-01-01 00:00:00", dt.datetime(2000, 1, 1))


def test_mysql_upsert_does_not_move_an_on_update_timestamp(
    own_table: Callable[..., SqlMetastore],
) -> None:
    driver = own_table("mysql")
    table = driver.table_name
    with driver.engine.connect() as conn:
        # What a bare "created TIMESTAMP NOT NULL" becomes with explicit_defaults_for_timestamp off.
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (id VARCHAR(255) NOT NULL, created TIMESTAMP NOT NULL "
                "DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, key_record TEXT NOT NULL, "
                "PRIMARY KEY (id, created))"
            )
        )
    assert driver.store("g", 946684800, EnvelopeKeyRecord(946684800, b"one"))
    driver.upsert("g", 946684800, EnvelopeKeyRecord(946684800, b"two"))
    loaded = driver.load("g", 946684800)
    assert loaded is not None
    assert loaded.encrypted_key == b"two"


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("sqlite", "text"),
        ("postgres", "text"),
        ("postgres", "json"),
        ("postgres", "jsonb"),
        ("mysql", "text"),
        ("mysql", "json"),
        ("mysql", "jsonb"),
    ],
)
def test_key_record_column_types(
    own_table: Callable[..., SqlMetastore], backend: str, kind: str
) -> None:
    driver = own_table(backend, key_record_type=kind, create_schema=True)
    table = driver.table_name
    expected_type = {
        ("postgres", "text"): "text",
        ("postgres", "json"): "json",
        ("postgres", "jsonb"): "jsonb",
        ("mysql", "text"): "text",
        ("mysql", "json"): "longtext",  # MariaDB: JSON is LONGTEXT + json_valid()
        ("mysql", "jsonb"): "longtext",
        ("sqlite", "text"): "TEXT",
    }[(backend, kind)]
    columns = {c["name"]: c["type"] for c in sa.inspect(driver.engine).get_columns(table)}
    assert str(columns["key_record"]).lower() == expected_type.lower()
    rec = EnvelopeKeyRecord(
        1705325400, b"\x00\xff" * 30, KeyMeta('_SK_s"q\\_prod', 1705325340), True
    )
    assert driver.store("_IK_p_s_prod", rec.created, rec)
    assert driver.load("_IK_p_s_prod", rec.created) == rec
    # JSON columns may re-order keys and add spaces; a canonical client may write either.
    reordered = (
        '{ "ParentKeyMeta" : {"Created": 5, "KeyId": "_SK_x"}, "Unknown": [1], "Key": "AAEC", '
        '"Created": 1705325460 }'
    )
    reference_insert(driver, "_IK_p_s_prod", 1705325460, reordered)
    latest = driver.load_latest("_IK_p_s_prod")
    assert latest == EnvelopeKeyRecord(1705325460, b"\x00\x01\x02", KeyMeta("_SK_x", 5))


def test_create_schema_is_idempotent_and_canonical(
    own_table: Callable[..., SqlMetastore], backend: str
) -> None:
    driver = own_table(backend, create_schema=True)
    table = driver.table_name
    driver.create_schema()
    inspector = sa.inspect(driver.engine)
    assert inspector.get_pk_constraint(table)["constrained_columns"] == ["id", "created"]
    types = {c["name"]: str(c["type"]).lower() for c in inspector.get_columns(table)}
    assert set(types) == {"id", "created", "key_record"}
    assert types["key_record"] == {"sqlite": "text", "postgres": "jsonb", "mysql": "text"}[backend]
    assert types["created"] == "timestamp"


def test_servers_never_create_tables_unasked(
    own_table: Callable[..., SqlMetastore], backend: str
) -> None:
    driver = own_table(backend)
    exists = sa.inspect(driver.engine).has_table(driver.table_name)
    # SQLite is auto-created (as the reference does); the servers only on request.
    assert exists is (backend == "sqlite")


def test_ids_are_case_sensitive(own_table: Callable[..., SqlMetastore], backend: str) -> None:
    driver = own_table(backend, create_schema=True)
    # On MySQL the server's default collation would make these one row.
    assert driver.store("_IK_Bob_svc_prod", 1705325400, record(1705325400, 1))
    assert driver.store("_IK_bob_svc_prod", 1705325400, record(1705325400, 2))
    assert driver.load("_IK_bob_svc_prod", 1705325400) == record(1705325400, 2)
    assert [r[0] for r in driver.list_rows("_IK_B")] == ["_IK_Bob_svc_prod"]


def test_list_rows_prefix_is_literal(metastore: SqlMetastore) -> None:
    base = unique("_IK_list_")
    ids = [base + "_a", base + "%a", base + "xa", base + "_b"]
    for i, key_id in enumerate(ids):
        assert metastore.store(key_id, 1705325400 + i, record(1705325400 + i, i))
    rows = list(metastore.list_rows(base + "_"))
    assert [(r[0], r[1]) for r in rows] == [(base + "_a", 1705325400), (base + "_b", 1705325403)]
    assert rows[0][2] == record(1705325400, 0)
    assert [r[0] for r in metastore.list_rows(base + "%")] == [base + "%a"]


@pytest.mark.parametrize(
    "bad", ['{"Created":"x","Key":"AA=="}', '{"Created":1,"Key":"not base64!"}', "[]"]
)
def test_corrupted_key_record_is_metastore_error_naming_the_key(
    metastore: SqlMetastore, bad: str
) -> None:
    key_id = unique("_IK_corrupt_")
    reference_insert(metastore, key_id, 1705325400, bad)
    with pytest.raises(MetastoreError, match=key_id):
        metastore.load(key_id, 1705325400)
    with pytest.raises(MetastoreError, match=key_id):
        metastore.load_latest(key_id)
    with pytest.raises(MetastoreError, match=key_id):
        list(metastore.list_rows(key_id))


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])  # JSONB refuses it on insert
def test_not_json_text_is_metastore_error(metastore: SqlMetastore) -> None:
    key_id = unique("_IK_garbage_")
    reference_insert(metastore, key_id, 1705325400, "not json at all")
    with pytest.raises(MetastoreError, match=f"{key_id}.*invalid key_record"):
        metastore.load(key_id, 1705325400)


def test_created_out_of_range_is_an_error_not_a_duplicate(metastore: SqlMetastore) -> None:
    with pytest.raises(MetastoreError):
        metastore.store(unique("_IK_range_"), 10**15, record(1))


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    driver = open_metastore(":memory:", db_type="sqlite")
    assert driver.drift_identity() == {"kind": "sqlite", "path": ":memory:"}
    results: list[bool] = []

    def store(i: int) -> None:
        results.append(driver.store("_IK_mem", 1705325400, record(1705325400, i)))

    threads = [threading.Thread(target=store, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert driver.load_latest("_IK_mem") is not None
    driver.close()


def test_guard_snapshot_bytes_survive_every_column(metastore: SqlMetastore) -> None:
    """The drift guard stores compact JSON inside base64: JSONB re-formatting the outer
    record must not change the snapshot bytes the guard compares."""
    snapshot = base64.b64decode(json.loads(REFERENCE_GUARD_JSON)["Key"])
    key_id = unique("__guard_bytes_")
    metastore.upsert(key_id, 946684800, EnvelopeKeyRecord(946684800, snapshot))
    loaded = metastore.load(key_id, 946684800)
    assert loaded is not None
    assert loaded.encrypted_key == snapshot


@pytest.mark.parametrize(
    ("backend", "column"),
    [("postgres", "TIMESTAMPTZ"), ("mysql", "DATETIME"), ("mysql", "TIMESTAMP NULL")],
)
def test_other_created_column_types(
    own_table: Callable[..., SqlMetastore], backend: str, column: str
) -> None:
    driver = own_table(backend)
    with driver.engine.connect() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {driver.table_name} (id VARCHAR(255) NOT NULL, created {column}, "
                "key_record TEXT NOT NULL, PRIMARY KEY (id, created))"
            )
        )
    assert driver.store("_IK_c", 1705325400, record(1705325400))
    assert driver.store("_IK_c", 1705325460, record(1705325460))
    assert driver.store("_IK_c", 1705325400, record(1705325400)) is False
    assert driver.load("_IK_c", 1705325400) == record(1705325400)
    latest = driver.load_latest("_IK_c")
    assert latest is not None
    assert latest.created == 1705325460
    assert [(r[0], r[1]) for r in driver.list_rows("_IK_")] == [
        ("_IK_c", 1705325400),
        ("_IK_c", 1705325460),
    ]
