"""Payloads for each target type, DingTalk's request signing, and one HTTP delivery.

- WeCom (企业微信) group robot: ``POST {url}`` with ``{"msgtype":"markdown","markdown":{"content":...}}``
  or ``{"msgtype":"text","text":{"content":...,"mentioned_mobile_list":[...]}}``; it answers
  HTTP 200 with ``{"errcode":0,"errmsg":"ok"}``, any other errcode is a failure.
- DingTalk robot: ``{"msgtype":"markdown","markdown":{"title":...,"text":...},"at":{...}}``;
  with a secret the URL gets ``&timestamp={ms}&sign={urlencode(base64(HMAC-SHA256(key=secret,
  msg="{ms}\\n{secret}")))}``, computed at send time (DingTalk refuses signatures older than an
  hour). Same errcode convention.
- Generic webhook: the alert event JSON with a ``notify`` object added
  (``reason``, ``link``, ``delivery``); any 2xx is success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import quote_plus

import requests

from rivermon.notify.message import Message
from rivermon.notify.routes import Target

USER_AGENT = "rivermon-notify/1"
_SECRET_RE = re.compile(r"(key=|access_token=|sign=|secret=)[^&\"' )]+")


class DeliveryError(Exception):
    """A delivery did not go through (network, HTTP status or robot errcode); it is retried."""


def chat_payload(target: Target, message: Message) -> dict[str, Any]:
    """The JSON body a WeCom or DingTalk robot expects for this message."""
    if target.type == "wecom":
        if target.msgtype == "text":
            text: dict[str, Any] = {"content": message.content}
            if target.mentioned_list:
                text["mentioned_list"] = list(target.mentioned_list)
            if target.mentioned_mobile_list:
                text["mentioned_mobile_list"] = list(target.mentioned_mobile_list)
            return {"msgtype": "text", "text": text}
        return {"msgtype": "markdown", "markdown": {"content": message.content}}
    if target.type == "dingtalk":
        at = {"atMobiles": list(target.mentioned_mobile_list), "isAtAll": target.at_all}
        # DingTalk only notifies the people whose "@phone" also appears in the text.
        mentions = " ".join(f"@{m}" for m in target.mentioned_mobile_list)
        content = f"{message.content}\n{mentions}" if mentions else message.content
        if target.msgtype == "text":
            return {"msgtype": "text", "text": {"content": content}, "at": at}
        return {"msgtype": "markdown",
                "markdown": {"title": message.title, "text": content}, "at": at}
    raise ValueError(f"target {target.name} of type {target.type} takes the alert event, not a chat message")


def webhook_payload(event: dict[str, Any], reason: str, link: str) -> dict[str, Any]:
    """The alert event as published, plus ``notify`` saying why it is sent (added compatibly)."""
    return {**event, "notify": {"reason": reason, "link": link}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")), not yet URL-encoded."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int | None = None) -> str:
    """The DingTalk robot URL with ``timestamp`` and ``sign`` appended."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={ts}&sign={quote_plus(dingtalk_sign(secret, ts))}"


def send(session: requests.Session, target: Target, body: str, delivery_id: int,
         timeout: float) -> None:
    """POST one stored body to the target; raise DeliveryError unless it was taken."""
    url = signed_url(target.url, target.secret) if target.type == "dingtalk" and target.secret else target.url
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
               "X-Rivermon-Delivery": str(delivery_id), **dict(target.headers)}
    try:
        resp = session.post(url, data=body.encode("utf-8"), headers=headers, timeout=timeout,
                            allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__}: {_short(str(exc))}") from None
    with resp:
        if not 200 <= resp.status_code < 300:
            raise DeliveryError(f"HTTP {resp.status_code}: {_short(resp.text)}")
        if target.chat:
            _check_errcode(resp)


def _check_errcode(resp: requests.Response) -> None:
    """WeCom and DingTalk answer 200 even on failure; the errcode in the body tells."""
    try:
        answer = resp.json()
    except ValueError:
        raise DeliveryError(f"HTTP {resp.status_code} but the answer is not JSON: {_short(resp.text)}") from None
    if not isinstance(answer, dict) or answer.get("errcode", 0) != 0:
        raise DeliveryError(f"robot refused: {_short(json.dumps(answer, ensure_ascii=False))}")


def _short(text: str, n: int = 300) -> str:
    """One line of at most ``n`` characters, with anything like a robot key masked."""
    return _SECRET_RE.sub(r"\1***", " ".join(text.split()))[:n]
