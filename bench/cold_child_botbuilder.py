"""One cold start of the same function built on botbuilder-python's CloudAdapter (the baseline).

It does the same work as MessagesFunction's first turn: validate the request (local mode,
no app id), save the conversation reference in Table Storage, reply through the connector.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

start = time.perf_counter()

import azure.functions as func  # noqa: E402 - it is a function too: the host hands it an HttpRequest
from azure.data.tables import TableServiceClient  # noqa: E402
from botbuilder.core import ActivityHandler, TurnContext  # noqa: E402
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication  # noqa: E402
from botbuilder.schema import Activity  # noqa: E402

imported = time.perf_counter()


class Config:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


class Bot(ActivityHandler):
    def __init__(self, table) -> None:
        self.table = table

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        reference = TurnContext.get_conversation_reference(turn_context.activity)
        self.table.upsert_entity({"PartitionKey": reference.channel_id, "RowKey": reference.conversation.id,
                                  "Reference": json.dumps(reference.serialize())})
        await turn_context.send_activity(
            "Hello user, good to meet you! I now know your address and can send you notifications in the future.")


async def serve_first_turn() -> None:
    service = TableServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])
    table = service.create_table_if_not_exists(os.environ["AddressesTableName"] + "bb")
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(Config()))
    request = func.HttpRequest("POST", "http://localhost/api/messages",
                               headers={"Content-Type": "application/json"}, body=os.environ["BENCH_ACTIVITY"].encode())
    activity = Activity().deserialize(request.get_json())
    response = await adapter.process_activity("", activity, Bot(table).on_turn)
    if response is not None and response.status not in (200, 201, 202):
        sys.exit(f"unexpected status {response.status}")


asyncio.run(serve_first_turn())
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_turn_s": done - start, "modules": len(sys.modules)}))
