"""Differential: our conversation references, proactive activities, mention stripping and roster calls
against the Microsoft 365 Agents SDK for Python (microsoft-agents-activity / -hosting-core, test oracles only),
for the same Teams payloads. Every field on which the two differ is named, with why, in the tables below."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import pytest
from microsoft_agents.activity import Activity as SdkActivity
from microsoft_agents.activity import ChannelAccount as SdkAccount
from microsoft_agents.activity import ConversationParameters
from microsoft_agents.hosting.core.connector.client.connector_client import ConnectorClient as SdkConnector

from shared_code.protocol.activity import Activity, message_to, reference_from_activity, strip_recipient_mention
from shared_code.protocol.connector import ConnectorClient, NoCredentials
from tests.support.teams import BOT_ID, TEAM_ID, TENANT, names, payload

SERVICE_URL = "https://smba.trafficmanager.net/amer/"

# Field (dotted path) -> why ours differs from Activity.get_conversation_reference().
REFERENCE_DIFFERENCES = {
    "tenantId": "ours only: the address keeps the tenant (conversation.tenantId, else channelData.tenant.id) "
                "because creating a 1:1 with a team member needs it; the SDK's reference has no tenant field "
                "and leaves it inside conversation, where ours has it too.",
}
# Field -> why our proactive message differs from Activity(type=message).apply_conversation_reference(reference).
PROACTIVE_DIFFERENCES = {
    "replyToId": "SDK only: apply_conversation_reference makes every message a reply to the activity the reference "
                 "was taken from. Ours is a new message: a notification days later is not an answer to that "
                 "activity, and Teams threads a channel post by the conversation id (;messageid=), not replyToId.",
}
# Field of the POST /v3/conversations body -> why ours differs from the SDK's ConversationParameters.
CREATE_DIFFERENCES = {
    "tenantId": "SDK only (its Teams samples set tenant_id): Teams reads channelData.tenant.id, which both send; "
                "ours sends the tenant once, where Teams documents it.",
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def differing(ours: dict[str, Any], sdk: dict[str, Any]) -> set[str]:
    a, b = flatten(ours), flatten(sdk)
    return {path for path in a.keys() | b.keys() if a.get(path) != b.get(path)}


def sdk_json(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def both(name: str) -> tuple[Activity, SdkActivity]:
    data = payload(name, SERVICE_URL)
    return Activity.from_json(data), SdkActivity.model_validate(data)


def reference_differences(name: str) -> set[str]:
    ours, sdk = both(name)
    return differing(reference_from_activity(ours).to_json(), sdk_json(sdk.get_conversation_reference()))


def proactive_differences(name: str) -> set[str]:
    ours, sdk = both(name)
    outgoing = SdkActivity(type="message", text="Release 42").apply_conversation_reference(sdk.get_conversation_reference())
    return differing(message_to(reference_from_activity(ours), "Release 42"), sdk_json(outgoing))


@pytest.mark.parametrize("name", names())
def test_conversation_reference_matches_the_sdks_but_for_named_fields(name):
    assert reference_differences(name) <= REFERENCE_DIFFERENCES.keys()


@pytest.mark.parametrize("name", names())
def test_proactive_message_matches_the_sdks_but_for_named_fields(name):
    assert proactive_differences(name) <= PROACTIVE_DIFFERENCES.keys()


def test_every_named_difference_still_occurs():
    seen = set().union(*(reference_differences(n) for n in names()))
    sent = set().union(*(proactive_differences(n) for n in names()))

    assert (seen, sent) == (REFERENCE_DIFFERENCES.keys(), PROACTIVE_DIFFERENCES.keys())


@pytest.mark.parametrize("name", [n for n in names() if payload(n, "")["type"] == "message"])
def test_text_without_the_bots_mention_matches_the_sdks(name):
    ours, sdk = both(name)

    assert strip_recipient_mention(ours) == sdk.remove_recipient_mention()


async def _sdk_call(url: str, call):  # noqa: ANN001, ANN202 - the SDK's async client, made and closed here
    client = SdkConnector(url, "oracle-token")
    try:
        return await call(client.conversations)
    finally:
        await client.client.close()


def test_personal_conversation_request_matches_the_sdks_but_for_named_fields(connector):
    connector.add_team(TEAM_ID, ["29:ada", "29:bob"], tenant_id=TENANT)
    parameters = ConversationParameters(is_group=False, agent=SdkAccount(id=BOT_ID), members=[SdkAccount(id="29:ada")],
                                        channel_data={"tenant": {"id": TENANT}}, tenant_id=TENANT)

    sdk_created = asyncio.run(_sdk_call(connector.url, lambda c: c.create_conversation(parameters)))
    ours_created = ConnectorClient(NoCredentials()).create_personal_conversation(
        connector.url, BOT_ID, "29:ada", TENANT, trusted=True)

    sdk_body, ours_body = connector.conversation_requests
    assert differing(ours_body, sdk_body) == CREATE_DIFFERENCES.keys()
    assert ours_created == sdk_created.id


def test_roster_page_matches_the_sdks(connector):
    connector.add_team(TEAM_ID, [f"29:m{i}" for i in range(120)], tenant_id=TENANT)

    sdk_page = asyncio.run(_sdk_call(connector.url, lambda c: c.get_conversation_paged_members(TEAM_ID, 50)))
    ours_page = ConnectorClient(NoCredentials()).paged_members(connector.url, TEAM_ID, 50, trusted=True)

    assert [m.id for m in ours_page.members] == [m.id for m in sdk_page.members]
    assert [m.aad_object_id for m in ours_page.members] == [m.aad_object_id for m in sdk_page.members]
    assert bool(ours_page.continuation) == bool(sdk_page.continuation_token)
    # Ours percent-encodes the team id in the path (as every id), the SDK sends it raw: the same path once decoded.
    sdk_path, ours_path = (path for method, path, _ in connector.requests[-2:])
    assert unquote(ours_path) == unquote(sdk_path) == f"/v3/conversations/{TEAM_ID}/pagedmembers"
