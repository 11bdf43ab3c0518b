"""The panel's WSGI server: werkzeug's threaded server, tuned for many short requests and
long-lived event streams (a thread per connection)."""

from __future__ import annotations

import sys
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1, so clients reuse connections (1.0 costs a connect and a thread per request)."""

    protocol_version = "HTTP/1.1"


def make_panel_server(app: Any, host: str, port: int) -> BaseWSGIServer:
    """A threaded server for ``app``; ``port`` 0 picks a free one (see ``server.server_port``)."""
    # With the default 5 ms GIL switch interval a short request can wait behind busy threads
    # for whole intervals (the convoy effect); 1 ms evens the latency out.
    sys.setswitchinterval(0.001)
    return make_server(host, port, app, threaded=True, request_handler=KeepAliveHandler)
