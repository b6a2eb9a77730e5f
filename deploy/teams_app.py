"""Build dist/teams-app.zip: the bot's Teams app package (manifest.json, color.png, outline.png).

    python -m deploy.teams_app [--out dist/teams-app.zip] [--settings local.settings.json] [--app-id GUID] ...

Every value comes from its option, else the environment, else local.settings.json's "Values" (the names
the Function App reads: MicrosoftAppId, PublicBaseUrl; the package's own: TeamsAppName, TeamsAppVersion, ...),
else a default. The manifest's id, its bot's id and webApplicationInfo.id are the bot's MicrosoftAppId: Graph
calls the manifest id the app's externalId, and proactive installation through Graph needs webApplicationInfo.
A missing or malformed value stops the build with exit code 2 and one line naming the setting.

The icons are drawn here (a speech bubble, white on the accent colour and white on transparent) and written as
PNGs by a small zlib + struct encoder. Entries carry one fixed time, so the same inputs give the same bytes.

Microsoft's pages behind the manifest's contents:
- App manifest reference (schema v1.30, "What's new in manifest version 1.30"):
  https://learn.microsoft.com/microsoft-365/extensibility/schema/
- Proactive installation of apps using Graph API (webApplicationInfo; the app must be in the org catalog):
  https://learn.microsoft.com/microsoftteams/platform/graph-api/proactive-bots-and-messages/graph-proactive-bots-and-messages
- Receive a read receipt (RSC ChatMessageReadReceipt.Read.Chat, Application; personal chats only):
  https://learn.microsoft.com/microsoftteams/platform/bots/build-conversational-capability#receive-a-read-receipt
- RSC permissions (webApplicationInfo.id is the Entra app the permission is granted to):
  https://learn.microsoft.com/microsoftteams/platform/graph-api/rsc/grant-resource-specific-consent
- Bot SSO manifest (resource api://botid-{id}; a user-assigned managed identity bot has no app registration, and
  RSC needs one: pass its id as --web-app-id): https://learn.microsoft.com/microsoftteams/platform/bots/how-to/authentication/bot-sso-manifest
- App package and icons (color 192x192 full colour, outline 32x32 white on transparent, files at the zip's root):
  https://learn.microsoft.com/microsoftteams/platform/concepts/build-and-test/apps-package
- App icon design (the colour icon a full square, its symbol inside the central 120x120 safe area):
  https://learn.microsoft.com/microsoftteams/platform/concepts/design/design-teams-app-icon-store-appbar
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy import build as builder

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("dist") / "teams-app.zip"
DEFAULT_SETTINGS = Path("local.settings.json")

# The newest generally available manifest version (August 2026). schemas/teams/ pins its schema and says where from.
MANIFEST_VERSION = "1.30"
SCHEMA_URL = f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
SCHEMA_FILE = ROOT / "schemas" / "teams" / f"MicrosoftTeams.schema.{MANIFEST_VERSION}.json"

# The app's version: raise it (or pass --version) for every package uploaded again, or Teams keeps the old one.
APP_VERSION = "1.0.0"
DEFAULT_NAME = "Proactive Bot"
DEFAULT_SHORT_DESCRIPTION = "Notifications and surveys from your organization"
DEFAULT_FULL_DESCRIPTION = (
    "This bot brings you your organization's announcements and short surveys. It remembers where it can reach "
    "you (this chat, your teams' channels, group chats), so a message arrives even when you have not written "
    "first. In a chat with the bot, type \"survey\" to answer the current survey and \"done\" to leave it."
)
DEFAULT_PUBLIC_BASE_URL = "http://localhost:7071"  # the Function App's own default for PublicBaseUrl
DEFAULT_ACCENT_COLOR = "#0F6CBD"

BOT_SCOPES = ("personal", "team", "groupChat")
# Read receipts reach a bot only with this resource-specific permission, as an Application permission.
READ_RECEIPTS_PERMISSION = {"name": "ChatMessageReadReceipt.Read.Chat", "type": "Application"}
# The page a later static tab shows (off by default: the portal does not exist yet).
PORTAL_PATH = "/api/portal/"

COLOR_ICON = "color.png"
OUTLINE_ICON = "outline.png"
COLOR_SIZE = 192
OUTLINE_SIZE = 32
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The manifest schema's own patterns and limits (definitions/guid, hexColor, semver; name, description, developer).
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
SEMVER = re.compile(r"^([0-9]|[1-9][0-9]*)\.([0-9]|[1-9][0-9]*)\.([0-9]|[1-9][0-9]*)$")
MAX_LENGTHS = {"name": 30, "short_description": 80, "full_description": 4000, "developer": 32}
MAX_URL_LENGTH = 2048


class TeamsAppError(Exception):
    """The package cannot be built; the message names the setting and what to do, on one line."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One value of the package: its option (argparse dest), the app setting it is read from, its help."""

    attr: str
    name: str
    help: str

    @property
    def option(self) -> str:
        return "--" + self.attr.replace("_", "-")


SETTINGS = (
    Setting("app_id", "MicrosoftAppId", "the bot's Microsoft App ID (a GUID): manifest id, bot id, webApplicationInfo.id"),
    Setting("public_base_url", "PublicBaseUrl",
            f"the app's https base URL: the developer URLs' default and validDomains (default {DEFAULT_PUBLIC_BASE_URL})"),
    Setting("name", "TeamsAppName", f"the app's short name, at most 30 characters (default {DEFAULT_NAME!r})"),
    Setting("short_description", "TeamsAppShortDescription", "at most 80 characters"),
    Setting("full_description", "TeamsAppFullDescription", "at most 4000 characters"),
    Setting("developer", "TeamsAppDeveloper", "the developer's name, at most 32 characters (default: the app's name)"),
    Setting("website_url", "TeamsAppWebsiteUrl", "developer.websiteUrl (default: PublicBaseUrl)"),
    Setting("privacy_url", "TeamsAppPrivacyUrl", "developer.privacyUrl (default: the website URL)"),
    Setting("terms_url", "TeamsAppTermsUrl", "developer.termsOfUseUrl (default: the website URL)"),
    Setting("version", "TeamsAppVersion", f"the app's version, MAJOR.MINOR.PATCH (default {APP_VERSION})"),
    Setting("accent_color", "TeamsAppAccentColor", f"#RRGGBB, also the colour icon's background (default {DEFAULT_ACCENT_COLOR})"),
    Setting("web_app_id", "TeamsAppWebApplicationId",
            "webApplicationInfo.id, the Entra app RSC is granted to (default: the bot's id; a managed-identity bot "
            "needs an app registration's id here)"),
)
SETTING_BY_ATTR = {setting.attr: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class TeamsApp:
    """What the package says. Empty optional fields take their defaults in `manifest()`."""

    app_id: str
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    name: str = DEFAULT_NAME
    short_description: str = DEFAULT_SHORT_DESCRIPTION
    full_description: str = DEFAULT_FULL_DESCRIPTION
    developer: str = ""
    website_url: str = ""
    privacy_url: str = ""
    terms_url: str = ""
    version: str = APP_VERSION
    accent_color: str = DEFAULT_ACCENT_COLOR
    web_app_id: str = ""
    # Where each value came from ("--app-id", "the environment", "local.settings.json"), for error messages.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def base_url(self) -> str:
        return self.public_base_url.rstrip("/")

    @property
    def developer_urls(self) -> dict[str, str]:
        website = self.website_url or self.base_url
        return {"websiteUrl": website, "privacyUrl": self.privacy_url or website,
                "termsOfUseUrl": self.terms_url or website}


def _named(app: TeamsApp, attr: str) -> str:
    """'MicrosoftAppId (from local.settings.json)': how an error names a value."""
    source = app.sources.get(attr)
    return f"{SETTING_BY_ATTR[attr].name}{f' (from {source})' if source else ''}"


def check(app: TeamsApp) -> None:
    """Refuse what the manifest schema or Teams would refuse, naming the setting."""
    for attr in ("app_id", "web_app_id"):
        value = getattr(app, attr)
        if attr == "app_id" and not value:
            raise TeamsAppError("MicrosoftAppId is not set: give the bot's Microsoft App ID with --app-id, "
                                "the MicrosoftAppId environment variable or local.settings.json's Values")
        if value and not GUID.match(value):
            raise TeamsAppError(f"{_named(app, attr)} is {value!r}, not a GUID: it must be the bot's Microsoft "
                                "App ID, like 00000000-0000-0000-0000-000000000000")
    for attr, limit in MAX_LENGTHS.items():
        value = getattr(app, attr)
        if len(value) > limit:
            raise TeamsAppError(f"{_named(app, attr)} has {len(value)} characters; Teams allows at most {limit}")
    if not app.name.strip():
        raise TeamsAppError(f"{_named(app, 'name')} is empty")
    if not SEMVER.match(app.version):
        raise TeamsAppError(f"{_named(app, 'version')} is {app.version!r}, not MAJOR.MINOR.PATCH (like 1.0.0)")
    if not HEX_COLOR.match(app.accent_color):
        raise TeamsAppError(f"{_named(app, 'accent_color')} is {app.accent_color!r}, not a colour like #0F6CBD")
    for attr in ("public_base_url", "website_url", "privacy_url", "terms_url"):
        value = getattr(app, attr)
        parts = urlsplit(value)
        if value and (parts.scheme.lower() not in ("http", "https") or not parts.hostname
                      or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value)):
            raise TeamsAppError(f"{_named(app, attr)} is {value!r}, not an http(s) URL")


def manifest(app: TeamsApp, *, portal_tab: bool = True) -> dict[str, Any]:
    """The manifest (schema v1.30) of a bot in personal chats, teams and group chats, with read receipts.

    `portal_tab`: a personal static tab showing the authors' page, {PublicBaseUrl}/api/portal/.
    """
    check(app)
    app_id = app.app_id.lower()
    web_app_id = (app.web_app_id or app.app_id).lower()
    data: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "manifestVersion": MANIFEST_VERSION,
        "version": app.version,
        "id": app_id,  # Graph's externalId of the app
        "developer": {"name": app.developer or app.name, **app.developer_urls},
        "name": {"short": app.name},
        "description": {"short": app.short_description, "full": app.full_description},
        "icons": {"color": COLOR_ICON, "outline": OUTLINE_ICON},
        "accentColor": app.accent_color,
    }
    if portal_tab:
        page = app.base_url + PORTAL_PATH
        data["staticTabs"] = [{"entityId": "portal", "name": "Notifications", "contentUrl": page, "websiteUrl": page,
                               "scopes": ["personal"], "context": ["personalTab"]}]
    data["bots"] = [{
        "botId": app_id,
        "scopes": list(BOT_SCOPES),
        "supportsFiles": False,
        "isNotificationOnly": False,  # the bot has a dialog: users write to it
    }]
    data["validDomains"] = sorted({urlsplit(url).hostname or "" for url in (app.base_url, *app.developer_urls.values())})
    # Proactive installation with Graph (TeamsAppInstallation.ReadWriteSelfFor*) and RSC both read this id.
    data["webApplicationInfo"] = {"id": web_app_id, "resource": f"api://botid-{web_app_id}"}
    data["authorization"] = {"permissions": {"resourceSpecific": [dict(READ_RECEIPTS_PERMISSION)]}}
    return data


# --- Icons --------------------------------------------------------------------------------------------------------


def png(width: int, height: int, rows: list[bytes], *, alpha: bool) -> bytes:
    """An 8-bit RGB (or RGBA) PNG, every row with filter 0, compressed at zlib level 9."""
    channels = 4 if alpha else 3
    if len(rows) != height or any(len(row) != width * channels for row in rows):
        raise ValueError("rows do not match the image size")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _rounded_box(x: float, y: float, cx: float, cy: float, hw: float, hh: float, r: float) -> float:
    qx, qy = abs(x - cx) - hw + r, abs(y - cy) - hh + r
    ox, oy = max(qx, 0.0), max(qy, 0.0)
    return math.sqrt(ox * ox + oy * oy) + min(max(qx, qy), 0.0) - r


def _circle(x: float, y: float, cx: float, cy: float, r: float) -> float:
    return math.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def _convex(x: float, y: float, points: tuple[tuple[float, float], ...]) -> float:
    """Distance to a convex polygon given clockwise in image coordinates (y down); exact inside, close outside."""
    distance = -math.inf
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        nx, ny = y2 - y1, x1 - x2
        length = math.sqrt(nx * nx + ny * ny)
        distance = max(distance, ((x - x1) * nx + (y - y1) * ny) / length)
    return distance


TAIL = ((0.30, 0.62), (0.48, 0.62), (0.25, 0.85))
DOTS = (0.33, 0.50, 0.67)


def bubble(x: float, y: float) -> float:
    """Signed distance (negative inside) to the icon's shape in the unit square: a speech bubble with three dots cut out."""
    body = min(_rounded_box(x, y, 0.5, 0.43, 0.36, 0.26, 0.13), _convex(x, y, TAIL))
    dots = min(_circle(x, y, cx, 0.43, 0.06) for cx in DOTS)
    return max(body, -dots)


def coverage(size: int, shape: Callable[[float, float], float], margin: float) -> list[list[float]]:
    """How much of each pixel the shape covers (0..1), antialiased over one pixel; the shape drawn inside `margin`."""
    scale = 1.0 - 2.0 * margin
    result = []
    for row in range(size):
        y = ((row + 0.5) / size - margin) / scale
        line = []
        for col in range(size):
            x = ((col + 0.5) / size - margin) / scale
            distance = shape(x, y) * scale * size  # in pixels
            line.append(min(1.0, max(0.0, 0.5 - distance)))
        result.append(line)
    return result


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


@functools.cache
def color_icon(accent: str, size: int = COLOR_SIZE) -> bytes:
    """Full colour: a white bubble on the accent colour, inside the middle 120 of 192 pixels (Teams' safe area)."""
    background = _rgb(accent)
    rows = []
    for line in coverage(size, bubble, margin=36 / 192):
        row = bytearray()
        for amount in line:
            row += bytes(round(c + (255 - c) * amount) for c in background)
        rows.append(bytes(row))
    return png(size, size, rows, alpha=False)


@functools.cache
def outline_icon(size: int = OUTLINE_SIZE) -> bytes:
    """White on transparent: every pixel is white, only its alpha varies."""
    rows = [b"".join(bytes((255, 255, 255, round(255 * amount))) for amount in line)
            for line in coverage(size, bubble, margin=2 / 32)]
    return png(size, size, rows, alpha=True)


# --- Package --------------------------------------------------------------------------------------------------------


def package_files(app: TeamsApp, *, portal_tab: bool = True) -> dict[str, bytes]:
    """The package's three files, at its root (Teams refuses folders), by name."""
    data = manifest(app, portal_tab=portal_tab)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return {"manifest.json": text.encode("utf-8"), COLOR_ICON: color_icon(app.accent_color),
            OUTLINE_ICON: outline_icon()}


def write_package(files: Mapping[str, bytes], out: Path) -> None:
    """A deterministic zip: the given order, one timestamp (the Function App zip's), mode 644, written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    stamp = builder._zip_time()
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, content, compresslevel=9)
    os.replace(partial, out)


def build(app: TeamsApp, out: Path | None = None, *, portal_tab: bool = True) -> Path:
    """Write the package; returns the zip's path."""
    out = out if out is not None else ROOT / DEFAULT_OUT
    write_package(package_files(app, portal_tab=portal_tab), out)
    return out


# --- Settings and command line ----------------------------------------------------------------------------------------


def local_values(path: Path) -> dict[str, str]:
    """local.settings.json's Values; nothing when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TeamsAppError(f"{path} is not valid JSON: {exc}") from exc
    values = data.get("Values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        return {}
    return {str(key): str(value) for key, value in values.items() if value is not None}


def resolve(options: Mapping[str, str | None], environ: Mapping[str, str], values: Mapping[str, str],
            settings_path: Path) -> TeamsApp:
    """Each value from its option, else the environment, else local.settings.json; empty counts as unset."""
    found: dict[str, str] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        for value, source in ((options.get(setting.attr), setting.option), (environ.get(setting.name), "the environment"),
                              (values.get(setting.name), str(settings_path))):
            if value is not None and value.strip():
                found[setting.attr], sources[setting.attr] = value.strip(), source
                break
    return replace(TeamsApp(app_id=found.pop("app_id", "")), **found, sources=sources)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.teams_app", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"the zip to write (default {DEFAULT_OUT})")
    parser.add_argument("--settings", type=Path, default=None,
                        help=f"the settings file whose Values are read (default {DEFAULT_SETTINGS})")
    parser.add_argument("--no-portal-tab", dest="portal_tab", action="store_false",
                        help="leave out the personal tab that shows the authors' page")
    for setting in SETTINGS:
        parser.add_argument(setting.option, dest=setting.attr, default=None, metavar=setting.name,
                            help=f"{setting.help}; else ${setting.name}")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    settings_path = args.settings if args.settings is not None else ROOT / DEFAULT_SETTINGS
    try:
        app = resolve({k: v for k, v in vars(args).items() if k != "portal_tab"}, environ, local_values(settings_path), settings_path)
        check(app)
        if urlsplit(app.public_base_url).scheme != "https":
            print(f"warning: PublicBaseUrl is {app.public_base_url}; a package you publish needs the app's https URL",
                  file=sys.stderr)
        out = build(app, args.out, portal_tab=args.portal_tab)
    except TeamsAppError as error:
        print(f"teams-app: {error}", file=sys.stderr)
        return 2
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out} {out.stat().st_size} bytes: manifest {MANIFEST_VERSION}, app and bot id {app.app_id.lower()}, "
          f"version {app.version}, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
