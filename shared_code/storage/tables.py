"""Table Storage helpers shared by the stores: create a table on first use, not on every cold start."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote
from wsgiref.handlers import format_date_time

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.data.tables import RequestTooLargeError, TableClient, TableErrorCode, TableTransactionError

if TYPE_CHECKING:
    from azure.core.pipeline.transport import RequestsTransport

T = TypeVar("T")


def new_transport(pool_size: int) -> RequestsTransport:
    """The HTTP transport every table and queue client of the process shares.

    As azure-core builds its own (no retries in requests: the pipeline retries), but one keep-alive
    pool for all clients instead of one per client (a QueueClient per enqueue opened a connection
    each time), sized for the threads that use storage at once (requests' default keeps 10 and
    drops the rest), and the environment's proxy settings read once per origin, not per request.
    """
    # Imported here: only the composition root builds a transport (a function's cold start imports less).
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    from shared_code.plumbing.http_session import pooled_session

    session = pooled_session(max(10, pool_size), max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    return RequestsTransport(session=session, session_owner=False)


def is_table_missing(error: HttpResponseError) -> bool:
    """A 404 for the table itself, not for an entity in it (transactions report it as their own error type)."""
    code = getattr(error, "error_code", None)
    return code == TableErrorCode.TABLE_NOT_FOUND or str(code) == "TableNotFound" or "TableNotFound" in str(error)


def query_or_empty(table: TableClient, query: str, parameters: dict[str, Any]) -> list[Any]:
    """Every entity `query` matches (a parameterized filter); none when the table was never created."""
    try:
        return list(table.query_entities(query, parameters=parameters))
    except ResourceNotFoundError as error:
        if is_table_missing(error):
            return []
        raise


def on_table(table: TableClient, operation: Callable[[], T]) -> T:
    """Run `operation`; if the table does not exist yet, create it and run it once more.

    Creating up front would cost every cold start a round trip; a missing table
    happens once per table in the app's life.
    """
    try:
        return operation()
    except HttpResponseError as error:
        if not is_table_missing(error):
            raise
    try:
        table.create_table()
    except ResourceExistsError:
        pass
    return operation()


# Tables this process has already made sure of: a cache that is safe to lose.
_known_tables: set[str] = set()


def ensure_table(table: TableClient) -> None:
    """Create `table` if this process has not yet seen it exist (one round trip per table and process)."""
    known = f"{table.url}/{table.table_name}"
    if known in _known_tables:
        return
    try:
        table.create_table()
    except ResourceExistsError:
        pass
    _known_tables.add(known)


def delete_partition(table: TableClient, partition_key: str, *, page_size: int = 100,
                     keep_last: str | None = None) -> int:
    """Delete every entity of one partition, a page (one transaction of at most 100) at a time;
    returns how many went. `keep_last` names a row deleted only after all the others, so a purge
    cut short leaves the record that lets the next run find the rest."""
    deleted = 0
    last: dict[str, str] | None = None
    try:
        query = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition_key},
                                     select=["PartitionKey", "RowKey"], results_per_page=page_size)
        for page in query.by_page():
            batch = []
            for entity in page:
                keys = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]}
                if keep_last is not None and entity["RowKey"] == keep_last:
                    last = keys
                else:
                    batch.append(("delete", keys))
            for start in range(0, len(batch), 100):
                table.submit_transaction(batch[start:start + 100])
                deleted += len(batch[start:start + 100])
        if last is not None:
            table.delete_entity(last["PartitionKey"], last["RowKey"])
            deleted += 1
    except HttpResponseError as error:
        if not is_table_missing(error):
            raise
    return deleted


# Table Storage accepts at most 15 comparisons in one filter: the partition and 14 row keys.
MAX_ROWS_PER_QUERY = 14


def get_many(table: TableClient, partition_key: str, row_keys: list[str],
             select: list[str] | None = None) -> list[dict]:
    """The entities of one partition with these row keys (absent ones left out), in a few queries
    rather than a point read each. The filter's shape is fixed; every value is a parameter."""
    found: list[dict] = []
    try:
        for start in range(0, len(row_keys), MAX_ROWS_PER_QUERY):
            chunk = row_keys[start:start + MAX_ROWS_PER_QUERY]
            rows = " or ".join(f"RowKey eq @r{i}" for i in range(len(chunk)))
            parameters = {"pk": partition_key, **{f"r{i}": key for i, key in enumerate(chunk)}}
            # Spaces around the parentheses: the SDK finds parameters by splitting the filter on spaces.
            found.extend(table.query_entities(f"PartitionKey eq @pk and ( {rows} )", parameters=parameters,
                                              select=select))
    except HttpResponseError as error:
        if not is_table_missing(error):
            raise
    return found


def submit_transaction(table: TableClient, operations: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """`table.submit_transaction(operations)`: the same operations on the wire, the same answers (each
    operation's `{"etag": ...}`, in order), the same error types, at a fraction of the CPU.

    The SDK builds the multipart body and parses the answer with the `email` package, and runs the
    answer's part policies on a thread pool it creates for every transaction: in a broadcast (one
    transaction per chunk of sends) that was a third of the host's CPU. Here the body is plain bytes and
    the answer is split by its boundaries. The ledger's two kinds of operation (a create, an ETag-guarded
    replace) are written here byte for byte as the SDK's request builders write them, with the SDK's
    entity serializer; any other kind is built by the SDK's TableBatchOperations. The request goes
    through the client's own pipeline (authentication, retries).
    """
    # The SDK's own request builder and entity serializer: private, but the ones TableClient.submit_transaction uses.
    from azure.data.tables._error import _decode_error, _validate_tablename_error
    from azure.data.tables._table_batch import TableBatchOperations

    operations = list(operations)
    endpoint = f"{table.scheme}://{table._primary_hostname}"  # noqa: SLF001
    # What the SDK's StorageHeadersPolicy adds to every operation of the changeset.
    now = format_date_time(time.time())
    parts = _written_here(endpoint, table.table_name, table.api_version, operations, now)
    if parts is None:
        batch = TableBatchOperations(config=table._client._config, endpoint=endpoint,  # noqa: SLF001
                                     table_name=table.table_name, is_cosmos_endpoint=table._cosmos_endpoint)  # noqa: SLF001
        for operation in operations:
            batch.add_operation(operation)
        if not batch.requests:
            return table.submit_transaction([])  # the SDK's answer to an empty transaction, whatever it is
        parts = [_serialize(request, now) for request in batch.requests]
    changeset, outer = f"changeset_{uuid.uuid4()}", f"batch_{uuid.uuid4()}"
    body = [f"--{outer}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, part in enumerate(parts):
        body.append(f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                    f"Content-ID: {index}\r\n\r\n".encode())
        body.append(part)
        body.append(b"\r\n")
    body.append(f"--{changeset}--\r\n\r\n--{outer}--\r\n".encode())
    request = HttpRequest("POST", f"{endpoint}/$batch", content=b"".join(body), headers={
        "x-ms-version": table.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={outer}", "Accept": "application/json"})
    # Streamed, as the SDK sends it: the pipeline does not try to decode a multipart answer.
    response = table._client.send_request(request, stream=True)  # noqa: SLF001
    if response.status_code == 413:
        raise _decode_error(response, error_message="The transaction request was too large",
                            error_type=RequestTooLargeError)
    if response.status_code != 202:
        decoded = _decode_error(response)
        _validate_tablename_error(decoded, table.table_name)
        raise decoded
    answers = _answers(response.read(), response.headers.get("Content-Type", ""))
    for status, _, content in answers:
        if not 200 <= status < 300:
            raise _part_error(status, content)
    return [{"etag": headers["etag"]} if "etag" in headers else {} for _, headers, content in answers]


def _written_here(endpoint: str, table_name: str, version: str, operations: list[tuple[Any, ...]],
                  now: str) -> list[bytes] | None:
    """The ledger's operations, a create or an ETag-guarded replace, written as the SDK's request builders
    write them (the same bytes; tests compare them) at a third of the CPU; None when any operation is of
    another kind or the partitions differ, for the SDK to build (or refuse) them."""
    from azure.core import MatchConditions
    from azure.core.serialization import AzureJSONEncoder
    from azure.data.tables import UpdateMode
    from azure.data.tables._serialize import _add_entity_properties

    parts, partition = [], None
    collection = f"{endpoint}/{quote(table_name, safe='')}"
    for operation in operations:
        if len(operation) not in (2, 3) or not isinstance(operation[0], str):
            return None
        kind, entity, options = operation[0].lower(), operation[1], (operation[2] if len(operation) == 3 else {})
        if not isinstance(entity, dict) or not isinstance(entity.get("PartitionKey"), str) \
                or not isinstance(entity.get("RowKey"), str) or partition not in (None, entity["PartitionKey"]):
            return None
        partition = entity["PartitionKey"]
        body = json.dumps(_add_entity_properties(entity), cls=AzureJSONEncoder).encode("utf-8")
        if kind == "create" and not options:
            head = (f"POST {collection} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"x-ms-version: {version}\r\nDataServiceVersion: 3.0\r\n"
                    f"Accept: application/json;odata=minimalmetadata\r\n")
        elif (kind == "update" and set(options) == {"mode", "etag", "match_condition"} and options["etag"]
              and options["mode"] == UpdateMode.REPLACE and options["match_condition"] == MatchConditions.IfNotModified):
            keys = (quote(entity["PartitionKey"].replace("'", "''"), safe=""),
                    quote(entity["RowKey"].replace("'", "''"), safe=""))
            head = (f"PUT {collection}(PartitionKey='{keys[0]}',RowKey='{keys[1]}') HTTP/1.1\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nx-ms-version: {version}\r\n"
                    f"DataServiceVersion: 3.0\r\nAccept: application/json\r\nIf-Match: {options['etag']}\r\n")
        else:
            return None
        parts.append(f"{head}x-ms-date: {now}\r\nDate: {now}\r\n\r\n".encode() + body)
    return parts or None


def _serialize(request: HttpRequest, now: str) -> bytes:
    """One operation as application/http: what the SDK's serializer writes (no Host, no Accept-Encoding)."""
    content = request.content
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content or b"")
    headers = dict(request.headers)
    if data and not any(k.lower() == "content-length" for k in headers):
        headers["Content-Length"] = str(len(data))
    headers["x-ms-date"] = headers["Date"] = now
    lines = [f"{request.method} {request.url} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("utf-8") + data


def _parts(body: bytes, boundary: str) -> list[bytes]:
    parts = []
    for chunk in body.split(b"--" + boundary.encode("ascii"))[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        parts.append(chunk.removeprefix(b"\r\n").removesuffix(b"\r\n"))
    return parts


def _boundary(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise ValueError(f"a multipart answer without a boundary: {content_type!r}")


def _answers(body: bytes, content_type: str) -> list[tuple[int, dict[str, str], bytes]]:
    """Every operation's answer in the batch's answer: (status, lower-cased headers, body)."""
    answers = []
    for part in _parts(body, _boundary(content_type)):
        head, _, payload = part.partition(b"\r\n\r\n")
        changeset = _headers(head).get("content-type", "")
        inner = _parts(payload, _boundary(changeset)) if changeset.startswith("multipart/mixed") else [part]
        for operation in inner:
            _, _, http = operation.partition(b"\r\n\r\n")  # the part's own headers (application/http)
            head, _, content = http.partition(b"\r\n\r\n")
            status_line, _, header_lines = head.partition(b"\r\n")
            answers.append((int(status_line.split()[1]), _headers(header_lines), content))
    return answers


def _headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _part_error(status: int, content: bytes) -> TableTransactionError:
    """The SDK's error for a refused operation: TableTransactionError (RequestTooLargeError for a 413),
    its message starting with the operation's index, its `error_code` the service's."""
    code, message = "", ""
    try:
        error = json.loads(content).get("odata.error", {})
        code, message = str(error.get("code") or ""), str((error.get("message") or {}).get("value") or "")
    except (ValueError, AttributeError):
        message = content.decode("utf-8", "replace")
    error_type = RequestTooLargeError if status == 413 else TableTransactionError
    refused = error_type(message=f"{message}\nErrorCode:{code}")
    refused.status_code = status
    refused.error_code = code
    refused.additional_info = {}
    return refused
