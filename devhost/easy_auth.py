"""App Service Authentication (Easy Auth) as the platform runs it in front of the app, played by the dev host.

For a signed-in person the platform adds `X-MS-CLIENT-PRINCIPAL`: base64 JSON with `auth_typ`, `claims`
[{typ, val}], `name_typ` and `role_typ` ("Work with user identities in AuthN/AuthZ", App Service docs), and the
plain `X-MS-CLIENT-PRINCIPAL-ID` and `-NAME`; it drops whatever the caller sent under those names.
"""

from __future__ import annotations

import base64
import json

OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
ROLE_CLAIM = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def encode_principal(object_id: str, name: str, roles: tuple[str, ...] = ()) -> str:
    """An `X-MS-CLIENT-PRINCIPAL` value as Easy Auth writes it for an Entra ID sign-in."""
    claims = [{"typ": OBJECT_ID_CLAIM, "val": object_id}, {"typ": "name", "val": name},
              *({"typ": ROLE_CLAIM, "val": role} for role in roles)]
    principal = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": ROLE_CLAIM}
    return base64.b64encode(json.dumps(principal).encode()).decode()


def signed_in_headers(object_id: str, name: str, roles: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers the platform adds to each request of a signed-in person."""
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal(object_id, name, roles), "X-MS-CLIENT-PRINCIPAL-ID": object_id,
            "X-MS-CLIENT-PRINCIPAL-NAME": name}
