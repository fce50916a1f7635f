"""The verification snippets of docs/operations.md ("Webhook contract"), Python and Node.js,
run against a delivery the deliverer sent to a real receiver."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.alerts.metrics import Metrics
from tests.integration.test_webhook_delivery import SECRET, Receiver, deliverer, one_alert

DOC = Path(__file__).parents[2] / "docs" / "operations.md"


def snippet(language: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Webhook contract") :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} snippet in the webhook contract"
    return match.group(1)


async def one_delivery(tmp_path: Path) -> tuple[dict[str, str], bytes]:
    receiver = Receiver([SECRET])
    async with (
        one_alert(tmp_path, receiver) as (sessions, url),
        httpx.AsyncClient(timeout=2) as client,
    ):
        d = deliverer(sessions, client, Metrics.create(CollectorRegistry()), [url])
        assert await d.deliver_due() == 1
    ((headers, body),) = receiver.requests
    return headers, body


async def test_the_python_snippet_verifies_a_delivery(tmp_path: Path) -> None:
    headers, body = await one_delivery(tmp_path)
    code = snippet("python").replace('"whsec_..."', repr(SECRET))
    scope: dict[str, object] = {}
    exec(compile(code, "operations.md", "exec"), scope)
    receive = scope["receive"]
    assert callable(receive)
    assert receive(body, headers) == 204
    assert receive(body, headers) == 200  # the same webhook-id again
    assert receive(body.replace(b'"q"', b'"x"'), headers) == 401


async def test_the_node_snippet_verifies_a_delivery(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed")
        pytest.skip("node is not installed")
    headers, body = await one_delivery(tmp_path)
    script = tmp_path / "verify.js"
    script.write_text(
        snippet("javascript")
        + """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
for (const body of [input.body, input.body.replace('"q"', '"x"')]) {
  try {
    console.log(verifyWebhook(input.secret, input.headers, body).alert.queue_id);
  } catch (e) {
    console.log("refused: " + e.message);
  }
}
""",
        encoding="utf-8",
    )
    stdin = json.dumps({"secret": SECRET, "headers": headers, "body": body.decode()})
    run = await asyncio.to_thread(subprocess.run, [node, str(script)], input=stdin,
                                  capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert run.stdout.splitlines() == ["q", "refused: no valid signature"]
