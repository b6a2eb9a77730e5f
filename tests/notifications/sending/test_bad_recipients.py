"""One bad recipient fails alone: no single address, however strange, can crash a scan or a page."""

from __future__ import annotations

from shared_code.app import services
from shared_code.storage.addresses import Address, _to_entity
from tests.support.broadcasts import FAST, broadcast, driver, is_done, seed, status
from tests.support.builders import reference


def store_legacy_address(connector_url: str, conversation_id: str) -> None:
    """Straight into the table, as an older version (before the edges checked ids) could have saved it."""
    table = services.get().table_service.get_table_client(services.get().settings.addresses_table)
    table.upsert_entity(_to_entity(Address(reference(connector_url, conversation_id), service_url_trusted=False)))


def test_a_broadcast_beside_an_address_with_a_lone_surrogate_completes_with_that_one_failed(app_env, connector):
    app_env.set(**FAST)
    ids = seed(connector.url, 3)
    store_legacy_address(connector.url, "a\ud800b")

    nid = broadcast("everyone else", job_id="n-surrogate")
    driver(app_env).run_until(is_done(nid), timeout=30)

    assert [connector.texts(cid) for cid in ids] == [["everyone else"]] * 3
    got = status(nid)
    assert (got["total"], got["sent"], got["failed"], got["pending"]) == (4, 3, 1, 0)
    assert got["errors"] == [{"code": "invalid_address", "message": ""}]
