"""Provider ``phone``: sign in with a code sent by SMS through your
:class:`~authbridge.mail.SmsSender` (authbridge ships no gateway)::

    {"phone": "+15551234567"}                  -> {"started": true}
    {"phone": "+15551234567", "code": "..."}   -> signed in; sets ``phone_verified_at``
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidParams
from ..mail import SmsSender
from ..otp import code_delivery, text_param
from .base import Outcome, ProviderContext, ProviderRoute, SignInRequest, Started
from .email import claim_contact, use_code

__all__ = ["PhoneProvider", "normalize_phone"]

_PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normalize_phone(phone: str) -> str:
    """E.164 form of ``phone`` (spaces, dots, dashes and parentheses removed).

    Raises:
        InvalidParams: not an international number like ``+15551234567``.
    """
    compact = re.sub(r"[\s().-]", "", phone)
    if not _PHONE_RE.match(compact):
        raise InvalidParams("phone must be an international number like +15551234567")
    return compact


class PhoneProvider:
    """Sign in with a code sent by SMS through ``sender`` (no gateway ships with authbridge).

    Args:
        sender: the :class:`~authbridge.mail.SmsSender` that reaches your gateway.
    """

    id = "phone"

    def __init__(self, sender: SmsSender) -> None:
        self.sender = sender

    def routes(self) -> Sequence[ProviderRoute]:
        """No routes of its own."""
        return ()

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Send a code, or sign in with one (sets ``phone_verified_at``).

        Raises:
            InvalidParams: malformed params or phone number.
            InvalidCode: wrong, used, replaced or expired code.
            TooManyAttempts: too many sends, or the code's wrong-try budget is spent.
            EmailUnavailable: the SMS gateway failed (no code kept).
            StoreUnavailable: the database failed.
        """
        delivery = code_delivery(ctx)
        raw = text_param(params, "phone")
        if raw is None:
            raise InvalidParams("phone is required")
        phone = normalize_phone(raw)
        code = text_param(params, "code")
        if code is None:
            await delivery.send_sms(self.sender, phone, ip=request.ip)
            return Started()
        used = await use_code(ctx, request, {"phone-signin"}, phone, code)
        return await claim_contact(ctx, "phone", used.identifier, self.id)
