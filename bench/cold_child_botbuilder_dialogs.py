"""One cold start of MessagesFunction's equivalent on botbuilder-python: CloudAdapter + botbuilder-dialogs.

The same work as our first turn: validate the request (local mode), save the conversation
reference in Table Storage, load the conversation's dialog state from Table Storage, begin
the main dialog (a waterfall whose first step asks the user's name), save the state, reply.
The SDK has no Table Storage `Storage`, so a minimal one is written here the way the SDK's
own storages (e.g. BlobStorage) serialise state: with jsonpickle.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

start = time.perf_counter()

import azure.functions as func  # noqa: E402 - it is a function too: the host hands it an HttpRequest
import jsonpickle  # noqa: E402
from azure.core.exceptions import ResourceNotFoundError  # noqa: E402
from azure.data.tables import TableServiceClient  # noqa: E402
from botbuilder.core import ActivityHandler, ConversationState, MessageFactory, Storage, TurnContext  # noqa: E402
from botbuilder.dialogs import DialogSet, DialogTurnStatus, TextPrompt, WaterfallDialog  # noqa: E402
from botbuilder.dialogs.prompts import PromptOptions  # noqa: E402
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication  # noqa: E402
from botbuilder.schema import Activity  # noqa: E402

imported = time.perf_counter()
GREETING = "Hello user, good to meet you! I now know your address and can send you notifications in the future."


class Config:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


class TableStorage(Storage):
    def __init__(self, table) -> None:
        self.table = table

    async def read(self, keys: list[str]) -> dict:
        found = {}
        for key in keys:
            try:
                entity = self.table.get_entity("state", key.replace("/", "|"))
            except ResourceNotFoundError:
                continue
            found[key] = jsonpickle.decode(entity["Data"])
        return found

    async def write(self, changes: dict) -> None:
        for key, item in changes.items():
            self.table.upsert_entity({"PartitionKey": "state", "RowKey": key.replace("/", "|"),
                                      "Data": jsonpickle.encode(item)})

    async def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.table.delete_entity("state", key.replace("/", "|"))


class Bot(ActivityHandler):
    def __init__(self, addresses, conversation_state: ConversationState) -> None:
        self.addresses = addresses
        self.conversation_state = conversation_state
        self.dialogs = DialogSet(conversation_state.create_property("DialogState"))
        self.dialogs.add(TextPrompt("name"))
        self.dialogs.add(WaterfallDialog("main", [self.ask_name, self.greet]))

    async def ask_name(self, step):
        return await step.prompt("name", PromptOptions(prompt=MessageFactory.text(f"{GREETING} What's your name?")))

    async def greet(self, step):
        await step.context.send_activity(f"Nice to meet you, {step.result}!")
        return await step.end_dialog()

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        reference = TurnContext.get_conversation_reference(turn_context.activity)
        self.addresses.upsert_entity({"PartitionKey": reference.channel_id, "RowKey": reference.conversation.id,
                                      "Reference": json.dumps(reference.serialize())})
        dialog_context = await self.dialogs.create_context(turn_context)
        result = await dialog_context.continue_dialog()
        if result.status == DialogTurnStatus.Empty:
            await dialog_context.begin_dialog("main")
        await self.conversation_state.save_changes(turn_context)


async def serve_first_turn() -> None:
    service = TableServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])
    addresses = service.create_table_if_not_exists(os.environ["AddressesTableName"] + "bbd")
    state = service.create_table_if_not_exists(os.environ["DialogStateTableName"] + "bbd")
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(Config()))
    request = func.HttpRequest("POST", "http://localhost/api/messages",
                               headers={"Content-Type": "application/json"}, body=os.environ["BENCH_ACTIVITY"].encode())
    activity = Activity().deserialize(request.get_json())
    bot = Bot(addresses, ConversationState(TableStorage(state)))
    response = await adapter.process_activity("", activity, bot.on_turn)
    if response is not None and response.status not in (200, 201, 202):
        sys.exit(f"unexpected status {response.status}")


asyncio.run(serve_first_turn())
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_turn_s": done - start, "modules": len(sys.modules)}))
