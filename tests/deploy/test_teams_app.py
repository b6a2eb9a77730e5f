"""The Teams app package (`make teams-app`): its manifest against Microsoft's pinned schema, its icons, its zip."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from deploy import teams_app

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_README = ROOT / "schemas" / "teams" / "README.md"
APP_ID = "6C1F3B2A-8D4E-4F5A-9B7C-0D1E2F3A4B5C"  # mixed case on purpose: the package writes it in lower case
BOT_ID = APP_ID.lower()
REGISTRATION_ID = "0b7e8f21-3c4d-4e5f-8a9b-1c2d3e4f5a6b"
BASE_URL = "https://proactivebot-contoso.azurewebsites.net"
PACKAGE_NAMES = ["manifest.json", "color.png", "outline.png"]
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s\"<>\\^`{|}]*$")


def schema() -> dict[str, Any]:
    return json.loads(teams_app.SCHEMA_FILE.read_text(encoding="utf-8"))


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """Errors as Microsoft's validator finds them: the draft the schema declares (4), plus `const` and `if`/`then`,
    which the schema uses and Ajv applies under draft-04 too, and a check for its one format, `uri` (jsonschema
    checks `uri` only with the rfc3987 package, which is not installed)."""
    pinned = schema()
    assert pinned["$schema"] == "http://json-schema.org/draft-04/schema#"
    later = jsonschema.Draft7Validator.VALIDATORS
    validator_class = jsonschema.validators.extend(jsonschema.Draft4Validator,
                                                   {"const": later["const"], "if": later["if"]})
    formats = jsonschema.FormatChecker()
    formats.checks("uri", raises=ValueError)(lambda value: not isinstance(value, str) or bool(
        URI.match(value) and urlsplit(value).scheme))
    validator = validator_class(pinned, format_checker=formats)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(manifest)]


def app(**values: str) -> teams_app.TeamsApp:
    return teams_app.TeamsApp(**{"app_id": APP_ID, "public_base_url": BASE_URL, **values})


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    colour_type: int
    rows: list[bytes]  # unfiltered pixel bytes

    @property
    def channels(self) -> int:
        return {2: 3, 6: 4}[self.colour_type]

    def pixels(self) -> list[tuple[int, ...]]:
        step = self.channels
        return [tuple(row[i:i + step]) for row in self.rows for i in range(0, len(row), step)]


def read_png(data: bytes) -> Png:
    """Parse a PNG: signature, chunks with their CRCs, IHDR, and the pixels of an 8-bit image written with filter 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    chunks: list[tuple[bytes, bytes]] = []
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour_type, compression, filter_method, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filter_method, interlace) == (8, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * {2: 3, 6: 4}[colour_type]
    assert len(raw) == height * (stride + 1)
    rows = [raw[i * (stride + 1):(i + 1) * (stride + 1)] for i in range(height)]
    assert {row[0] for row in rows} == {0}, "this reader handles filter type 0 only"
    return Png(width, height, colour_type, [row[1:] for row in rows])


def run(args: list[str], tmp_path: Path) -> int:
    """The command line in-process, with no environment and a settings file of the test's own."""
    settings = [] if "--settings" in args else ["--settings", str(tmp_path / "absent.settings.json")]
    out = [] if "--out" in args else ["--out", str(tmp_path / "teams-app.zip")]
    return teams_app.main([*settings, *out, *args], environ={})


def built(tmp_path: Path, *args: str) -> dict[str, bytes]:
    assert run(["--app-id", APP_ID, "--public-base-url", BASE_URL, *args], tmp_path) == 0
    with zipfile.ZipFile(tmp_path / "teams-app.zip") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_pinned_schema_has_the_sha256_its_readme_notes() -> None:
    noted = re.search(r"^\s*sha256 ([0-9a-f]{64})\s*$", SCHEMA_README.read_text(encoding="utf-8"), re.MULTILINE)
    assert noted is not None, "schemas/teams/README.md has no `sha256 <hex>` line"
    assert hashlib.sha256(teams_app.SCHEMA_FILE.read_bytes()).hexdigest() == noted.group(1)


def test_manifest_version_and_schema_url_are_the_pinned_schemas() -> None:
    manifest = teams_app.manifest(app())
    assert manifest["manifestVersion"] == schema()["properties"]["manifestVersion"]["const"] == "1.30"
    assert manifest["$schema"] == "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"
    assert teams_app.SCHEMA_FILE.name == f"MicrosoftTeams.schema.{manifest['manifestVersion']}.json"


def test_manifest_validates_against_the_pinned_schema() -> None:
    assert schema_errors(teams_app.manifest(app())) == []


def test_manifest_with_every_value_overridden_validates_against_the_pinned_schema() -> None:
    manifest = teams_app.manifest(app(
        name="N" * 30, short_description="S" * 80, full_description="F" * 4000, developer="D" * 32,
        website_url="https://example.com/", privacy_url="https://example.com/privacy",
        terms_url="https://example.com/terms", version="12.0.3", accent_color="#a0B1c2", web_app_id=REGISTRATION_ID))
    assert schema_errors(manifest) == []


def test_manifest_has_a_personal_tab_with_the_authors_page_that_validates() -> None:
    manifest = teams_app.manifest(app())
    assert schema_errors(manifest) == []
    [tab] = manifest["staticTabs"]
    assert tab["contentUrl"] == f"{BASE_URL}/api/portal/"
    assert tab["scopes"] == ["personal"]


def test_manifest_without_the_portal_tab_has_no_static_tab() -> None:
    assert "staticTabs" not in teams_app.manifest(app(), portal_tab=False)


def test_schema_check_refuses_another_manifest_version() -> None:
    manifest = {**teams_app.manifest(app()), "manifestVersion": "1.29"}
    assert any(error.startswith("manifestVersion:") for error in schema_errors(manifest))


def test_schema_check_refuses_a_schema_url_that_is_not_a_uri() -> None:
    manifest = {**teams_app.manifest(app()), "$schema": "not a uri"}
    assert any(error.startswith("$schema:") for error in schema_errors(manifest))


def test_manifest_id_bot_id_and_web_application_id_are_the_bots_app_id() -> None:
    manifest = teams_app.manifest(app())
    assert manifest["id"] == BOT_ID
    assert [bot["botId"] for bot in manifest["bots"]] == [BOT_ID]
    assert manifest["webApplicationInfo"]["id"] == BOT_ID


def test_bot_is_in_personal_team_and_group_chat_scopes_with_a_dialog_and_no_files() -> None:
    [bot] = teams_app.manifest(app())["bots"]
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    assert bot["isNotificationOnly"] is False
    assert bot["supportsFiles"] is False


def test_read_receipts_rsc_permission_is_requested_as_an_application_permission() -> None:
    permissions = teams_app.manifest(app())["authorization"]["permissions"]
    assert permissions == {"resourceSpecific": [{"name": "ChatMessageReadReceipt.Read.Chat", "type": "Application"}]}


def test_web_application_info_is_the_bot_with_its_botid_resource() -> None:
    assert teams_app.manifest(app())["webApplicationInfo"] == {"id": BOT_ID, "resource": f"api://botid-{BOT_ID}"}


def test_web_application_id_can_name_an_app_registration_while_the_app_stays_the_bot() -> None:
    manifest = teams_app.manifest(app(web_app_id=REGISTRATION_ID))
    assert manifest["webApplicationInfo"] == {"id": REGISTRATION_ID, "resource": f"api://botid-{REGISTRATION_ID}"}
    assert (manifest["id"], manifest["bots"][0]["botId"]) == (BOT_ID, BOT_ID)


def test_developer_urls_and_valid_domains_default_to_the_public_base_url() -> None:
    manifest = teams_app.manifest(app(public_base_url=BASE_URL + "/"))
    assert manifest["developer"] == {"name": teams_app.DEFAULT_NAME, "websiteUrl": BASE_URL,
                                     "privacyUrl": BASE_URL, "termsOfUseUrl": BASE_URL}
    assert manifest["validDomains"] == ["proactivebot-contoso.azurewebsites.net"]


def test_icons_are_pngs_of_the_sizes_teams_requires(tmp_path: Path) -> None:
    files = built(tmp_path)
    color, outline = read_png(files["color.png"]), read_png(files["outline.png"])
    assert (color.width, color.height) == (192, 192)
    assert (outline.width, outline.height) == (32, 32)


def test_color_icon_is_opaque_and_in_full_colour(tmp_path: Path) -> None:
    color = read_png(built(tmp_path, "--accent-color", "#0F6CBD")["color.png"])
    assert color.colour_type == 2  # RGB: no transparency
    pixels = set(color.pixels())
    assert {(0x0F, 0x6C, 0xBD), (255, 255, 255)} <= pixels  # the accent background and the white bubble


def test_outline_icon_pixels_are_white_or_transparent(tmp_path: Path) -> None:
    outline = read_png(built(tmp_path)["outline.png"])
    assert outline.colour_type == 6  # RGBA
    pixels = outline.pixels()
    assert all(pixel[3] == 0 or pixel[:3] == (255, 255, 255) for pixel in pixels)
    assert {pixel[3] for pixel in pixels} >= {0, 255}  # a shape, not an empty or a full square


def test_zip_holds_exactly_the_manifest_and_the_icons_at_its_root(tmp_path: Path) -> None:
    files = built(tmp_path)
    assert sorted(files) == sorted(PACKAGE_NAMES)
    manifest = json.loads(files["manifest.json"].decode("utf-8"))
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_zip_manifest_is_the_manifest_of_the_settings(tmp_path: Path) -> None:
    manifest = json.loads(built(tmp_path, "--name", "Contoso News")["manifest.json"])
    assert manifest == teams_app.manifest(app(name="Contoso News"))


def test_two_builds_give_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    for out in (first, second):
        assert run(["--app-id", APP_ID, "--out", str(out)], tmp_path) == 0
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(io.BytesIO(first.read_bytes())) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_missing_app_id_refuses_with_exit_2_and_one_line_naming_the_setting(tmp_path: Path, capsys) -> None:
    assert run([], tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MicrosoftAppId is not set" in err
    assert not (tmp_path / "teams-app.zip").exists()


@pytest.mark.parametrize("value", ["not-a-guid", "{" + BOT_ID + "}", BOT_ID.replace("-", ""), BOT_ID + "0"])
def test_app_id_that_is_not_a_guid_refuses_with_exit_2_naming_the_setting(tmp_path: Path, capsys, value: str) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"MicrosoftAppId": value}}))
    assert run(["--settings", str(settings)], tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"MicrosoftAppId (from {settings}) is {value!r}, not a GUID" in err


def test_name_longer_than_teams_allows_refuses_with_exit_2_naming_the_setting(tmp_path: Path, capsys) -> None:
    assert run(["--app-id", APP_ID, "--name", "N" * 31], tmp_path) == 2
    assert "TeamsAppName (from --name) has 31 characters; Teams allows at most 30" in capsys.readouterr().err


def test_option_wins_over_environment_which_wins_over_local_settings(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"MicrosoftAppId": REGISTRATION_ID, "TeamsAppName": "From settings",
                                               "TeamsAppVersion": "3.0.0", "PublicBaseUrl": ""}}))
    app = teams_app.resolve({"name": "From option"}, {"MicrosoftAppId": APP_ID, "TeamsAppName": "From env"},
                            teams_app.local_values(settings), settings)
    assert (app.app_id, app.name, app.version) == (APP_ID, "From option", "3.0.0")
    assert app.public_base_url == teams_app.DEFAULT_PUBLIC_BASE_URL  # empty counts as unset


def make_recipe(target: str) -> tuple[str, list[str]]:
    """The prerequisites and the commands of one Makefile target."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    commands = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        commands.append(line[1:])
    return lines[start].split(":", 1)[1].strip(), commands


def test_make_teams_app_command_builds_the_package_from_a_copy_of_the_settings(tmp_path: Path) -> None:
    prerequisites, commands = make_recipe("teams-app")
    assert prerequisites == "setup" and commands == ["$(PY) -m deploy.teams_app"]
    assert "teams-app" in next(line for line in (ROOT / "Makefile").read_text().splitlines()
                               if line.startswith(".PHONY:")).split()
    values = json.loads((ROOT / "local.settings.example.json").read_text(encoding="utf-8"))
    values["Values"].update(MicrosoftAppId=APP_ID, PublicBaseUrl=BASE_URL)
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps(values))
    env = {key: value for key, value in os.environ.items()
           if key not in {setting.name for setting in teams_app.SETTINGS}}
    command = [sys.executable if part == "$(PY)" else part for part in commands[0].split()]
    out = tmp_path / "teams-app.zip"
    result = subprocess.run([*command, "--settings", str(settings), "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # an https PublicBaseUrl: no warning
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(PACKAGE_NAMES)
        assert json.loads(archive.read("manifest.json"))["id"] == BOT_ID
    assert str(out) in result.stdout
