"""Run code in a real kernel through jupyter_client and gather what it printed.

Shared by the demo-notebook test and the opt-in SageMath kernel check.
"""

from __future__ import annotations


def run_code(kc, code: str, silent: bool = False, timeout: float = 300) -> tuple[str, str]:
    """Execute `code`; return (reply status, text of its outputs and errors)."""
    msg_id = kc.execute(code, silent=silent, store_history=not silent, stop_on_error=False)
    text = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            text.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            text.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            break
    # Its own reply: a reply to an earlier request (wait_for_ready's repeated
    # kernel_info) may still be queued on the shell channel.
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    return reply["content"]["status"], "".join(text)
