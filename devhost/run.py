"""`python -m devhost.run` (what `make run` calls): Azurite, the app on the dev host and the chat channel, together."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from devhost import azurite, telemetry
from devhost.app import AppError
from devhost.channel import HELP, LocalChannel, Repl
from devhost.easy_auth import signed_in_headers
from devhost.host import Host
from stubs.graph import GraphStub, TokenClaims

log = logging.getLogger("devhost")
DEFAULT_PORT = 7071
# The bot's app id (and the Teams app's manifest id) in this chat: MicrosoftAppId with --auth, and the manifest id
# of the app in the Graph stub's catalog in local mode, where MicrosoftAppId is empty. A GUID, as a real one is.
LOCAL_APP_ID = "00000000-0000-4000-8000-0000000b0071"
LOCAL_AUTHOR_ID = "00000000-0000-4000-8000-00000000a071"  # the authors' page's signed-in author in local mode
LOCAL_AUTHOR_NAME = "Local author"


def ensure_local_settings(root: Path) -> bool:
    """Create local.settings.json from the example when missing (it is not committed); True if created.

    An existing file gains the settings the example has and it lacks (a newer version of the
    app may read more), so the host does not refuse to start over a setting nobody set.
    """
    target = root / "local.settings.json"
    example = root / "local.settings.example.json"
    if not target.exists():
        shutil.copyfile(example, target)
        return True
    mine = json.loads(target.read_text())
    values = mine.setdefault("Values", {})
    missing = {k: v for k, v in json.loads(example.read_text()).get("Values", {}).items() if k not in values}
    if missing:
        values.update(missing)
        target.write_text(json.dumps(mine, indent=2) + "\n")
        print(f"Added to {target.name} from the example: {', '.join(sorted(missing))}", flush=True)
    return False


class _ConsoleFormatter(logging.Formatter):
    # The terminal is the chat: one short line per problem, the traceback stays in the log file.
    def format(self, record: logging.LogRecord) -> str:
        details = " (details in the host log)" if record.exc_info else ""
        return f"[host] {record.getMessage().splitlines()[0]}{details}"


def configure_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.setFormatter(_ConsoleFormatter())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(file_handler)
    root.addHandler(console)
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def start_host(root: Path, port: int, sign_in: Mapping[str, str] | None = None) -> Host:
    """The host on `port`, or on a free port when that one is taken."""
    try:
        return Host(root, port=port, sign_in=sign_in).start()
    except OSError:
        print(f"Port {port} is busy: using a free port instead.", flush=True)
        return Host(root, port=0, sign_in=sign_in).start()


def local_sign_in() -> dict[str, str]:
    """What App Service Authentication adds to each request of a signed-in author, for the local author (an
    Admin), and the setting by which the platform says it is on (`make run`; `--auth` leaves both out)."""
    os.environ["WEBSITE_AUTH_ENABLED"] = "True"
    return signed_in_headers(LOCAL_AUTHOR_ID, LOCAL_AUTHOR_NAME, ("Admins",))


def _add_trusted(url: str) -> None:
    # The bot only calls serviceUrls it trusts; the local channel's stub is one.
    current = [u for u in os.environ.get("TrustedServiceUrls", "").split(",") if u.strip()]
    os.environ["TrustedServiceUrls"] = ",".join([*current, url])


def local_setting(root: Path, name: str) -> str:
    """A setting as the app will see it: the environment, else local.settings.json."""
    if name in os.environ:
        return os.environ[name]
    path = root / "local.settings.json"
    values = json.loads(path.read_text(encoding="utf-8-sig")).get("Values", {}) if path.exists() else {}
    return str(values.get(name) or "")


def start_graph(channel: LocalChannel, app_id: str, *, auth: TokenClaims | None = None) -> GraphStub:
    """The Graph stub next to the channel, wired into the app's settings: GraphBaseUrl, TeamsServiceUrl (the
    channel's connector, where Teams users' chats live), and in local mode (no app id) TeamsAppCatalogId, so the
    app need not look the catalog up. The app is in the stub's catalog under its app id (or LOCAL_APP_ID); an
    install's conversationUpdate goes to the bot through the channel, signed as the channel signs."""
    graph = GraphStub(auth=auth).start()
    catalog_id = graph.register_app(app_id or LOCAL_APP_ID, display_name="Bot")
    os.environ["GraphBaseUrl"] = graph.base_url
    os.environ["TeamsServiceUrl"] = channel.service_url
    if not app_id:
        os.environ["TeamsAppCatalogId"] = catalog_id
    channel.attach_graph(graph)
    return graph


def start_login_services(channel: LocalChannel) -> list:
    """Local stand-ins for the Bot Framework login services, wired into the app's settings and the channel:
    the channel signs what it sends, and its connector accepts only tokens the bot got from the login stub.
    Returns [the OpenID service, the token service] (the token service also issues the bot's Graph tokens)."""
    from stubs.openid import OpenIdStub
    from stubs.token import TokenStub

    app_id, password = LOCAL_APP_ID, "local-bot-password"
    # msteams too: the Graph stub's installs reach the bot as Teams conversationUpdates, signed by this service.
    openid = OpenIdStub(app_id, channels=[channel.channel_id, "msteams"]).start()
    login = TokenStub(app_id, password).start()
    os.environ.update(openid.settings_env(app_id), MicrosoftAppPassword=password,
                      ToChannelFromBotLoginUrl=login.login_url())
    channel.sign = openid.sign_activity
    channel.connector.token_check = login.is_valid
    print(f"Auth on: MicrosoftAppId={app_id}; activities are signed by a local OpenID service", flush=True)
    return [openid, login]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.run", description=__doc__)
    parser.add_argument("--root", default=str(azurite.ROOT), help="the function app folder")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the host's HTTP port (busy: a free one)")
    parser.add_argument("--user", default="you", help="the first local user's name")
    parser.add_argument("--auth", action="store_true",
                        help="run the real Bot Framework auth path: a local login service signs the channel's "
                             "activities and issues the bot's tokens (sets MicrosoftAppId for this run)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if ensure_local_settings(root):
        print(f"Created {root / 'local.settings.json'} from local.settings.example.json", flush=True)
    log_file = root / ".azurite" / "devhost.log"
    configure_logging(log_file)
    telemetry_on = telemetry.configure()  # OTEL_TRACES_EXPORTER=console and the like (devhost/telemetry.py)
    if telemetry_on:
        print(f"OpenTelemetry: {', '.join(telemetry_on)}", flush=True)
    # SIGTERM stops everything the way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    emulator = azurite.start()
    host: Host | None = None
    channel: LocalChannel | None = None
    graph: GraphStub | None = None
    login_services: list = []
    try:
        # The environment wins over local.settings.json, so the app uses this Azurite.
        os.environ["AzureWebJobsStorage"] = emulator.connection_string
        channel = LocalChannel("http://127.0.0.1/api/messages").start()
        if args.auth:
            login_services = start_login_services(channel)
        else:
            _add_trusted(channel.service_url)
        app_id = local_setting(root, "MicrosoftAppId")
        # With --auth, Graph wants a token for https://graph.microsoft.com from the login service; without, none.
        graph = start_graph(channel, app_id, auth=login_services[1].claims if login_services else None)
        explicit_base_url = "PublicBaseUrl" in os.environ
        try:
            host = start_host(root, args.port, None if args.auth else local_sign_in())
        except AppError as exc:
            print(f"The app cannot start: {exc}", file=sys.stderr)
            return 2
        if not explicit_base_url:
            os.environ["PublicBaseUrl"] = host.url
        channel.bot_url = f"{host.url}/api/messages"
        notify_url = f"{host.url}/api/notify"
        print(f"Azurite:        queue :{emulator.ports['queue']}, table :{emulator.ports['table']}, "
              f"blob :{emulator.ports['blob']} (data in {emulator.folder}, removed at exit)")
        print(f"Functions host: {host.url}   (log: {log_file})")
        # Scripts in another terminal (the notify CLI, a service putting jobs on the queue) need this Azurite.
        print(f"Storage:        export AzureWebJobsStorage='{emulator.connection_string}'")
        for name, why in host.skipped.items():
            print(f"                {name} is not running: {why}")
        print(f"Bot endpoint:   {channel.bot_url}")
        if args.auth:
            print(f"Authors' page:  {host.url}/api/portal/  refuses its API: no App Service Authentication here, so "
                  "a sign-in header (even a forged X-MS-CLIENT-PRINCIPAL) is not trusted")
        else:
            print(f"Authors' page:  {host.url}/api/portal/  (signed in as {LOCAL_AUTHOR_NAME}, an Admin)")
        print(f"Local channel:  serviceUrl {channel.service_url}")
        print(f"Graph (stub):   {graph.base_url}  (the app {app_id or LOCAL_APP_ID} in its catalog; "
              "/group makes people who never wrote)")
        print(HELP, flush=True)
        repl = Repl(channel, notify_url, graph)
        repl.handle(f"/user {args.user}")
        repl.run()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping: host (running invocations finish), Graph stub, channel, Azurite...", flush=True)
        # The host first: a proactive send still running needs the channel to deliver to.
        if host is not None:
            host.stop()
        if graph is not None:  # before the channel: a conversationUpdate still going out goes through it
            graph.stop()
        if channel is not None:
            channel.stop()
        for service in login_services:
            service.stop()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
