"""The rate budget's row on Azurite: the table is made on first use, rows are per bot and tenant,
one budget per process, and the settings that drive it."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableClient, TableServiceClient

from shared_code.notifications.sending.rate_budget import DECREASE, RateBudget, shared_budget, tenant_key
from shared_code.plumbing.errors import ConfigError
from shared_code.plumbing.settings import load_settings


def fresh_table(connection: str) -> TableClient:
    return TableClient.from_connection_string(connection, f"budget{uuid.uuid4().hex[:10]}")


def test_budget_creates_its_table_and_the_tenant_row_on_first_use(storage_connection):
    table = fresh_table(storage_connection)

    RateBudget(table, limit=48).acquire("tenant:t1")

    rows = list(table.list_entities())
    assert [(row["Tenant"], row["Tat"] > 0) for row in rows] == [("tenant:t1", True)]


def test_budget_rows_are_per_bot_and_per_tenant(storage_connection):
    table = fresh_table(storage_connection)
    RateBudget(table, limit=48, bot="bot-a").acquire("tenant:t1")
    RateBudget(table, limit=48, bot="bot-a").acquire("tenant:t2")
    RateBudget(table, limit=48, bot="bot-b").acquire("tenant:t1")

    rows = {(row["PartitionKey"], row["Tenant"]) for row in table.list_entities()}

    assert len(rows) == 3


def test_budget_throttled_lowers_the_rate_in_the_row(storage_connection):
    table = fresh_table(storage_connection)
    budget = RateBudget(table, limit=48)
    budget.acquire("tenant:t1")

    budget.throttled("tenant:t1", 1.0)

    assert RateBudget(table, limit=48).rate("tenant:t1") == pytest.approx(48 * DECREASE)  # as another instance reads it
    assert RateBudget(table, limit=48).rate("tenant:t2") == 48.0


def test_budget_acquire_after_throttled_waits_for_retry_after(storage_connection):
    table = fresh_table(storage_connection)
    clock = [1_000_000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    budget = RateBudget(table, limit=48, clock=lambda: clock[0], sleep=sleep)
    budget.throttled("tenant:t1", 3.0)

    waited = budget.acquire("tenant:t1")

    assert waited == pytest.approx(3.0)


def test_shared_budget_is_one_per_process_for_the_same_settings(storage_connection):
    service = TableServiceClient.from_connection_string(storage_connection)
    settings = load_settings({"RateBudgetTableName": "SharedBudgetProbe", "TenantSendRatePerSecond": "30"})

    first, second = shared_budget(service, settings), shared_budget(service, settings)

    assert first is second
    assert (first.limit, first.table.table_name) == (30.0, "SharedBudgetProbe")


def test_budget_settings_default_to_48_per_second_in_table_rate_budget():
    settings = load_settings({})

    assert (settings.tenant_send_rate_per_second, settings.rate_budget_table) == (48.0, "RateBudget")


def test_budget_rate_setting_must_be_positive():
    with pytest.raises(ConfigError, match="TenantSendRatePerSecond"):
        load_settings({"TenantSendRatePerSecond": "0"})


def test_tenant_key_is_the_tenant_id_else_the_service_url():
    assert tenant_key("72f988bf", "https://smba.trafficmanager.net/emea/") == "tenant:72f988bf"
    assert tenant_key("", "https://smba.trafficmanager.net/emea/") == "url:https://smba.trafficmanager.net/emea"
    assert tenant_key("", "HTTPS://SMBA.trafficmanager.net/emea") == tenant_key("", "https://smba.trafficmanager.net/emea/")
