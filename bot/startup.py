"""`serve`'s start: any failure ends in one line on stderr that says what failed and what to
try, with everything that was opened closed again (no traceback, no unclosed session)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from bot.app import BotServer

log = logging.getLogger("bot.startup")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""


def explain(server: BotServer, error: BaseException) -> str:
    """What went wrong at start, in one line."""
    from bot.app import StartupError

    if isinstance(error, StartupError):
        return str(error)
    problem = database_problem(server.settings.database_url, error)
    if problem is not None:
        return problem
    reason = _first_line(error)
    return (
        f"unexpected {type(error).__name__}{': ' + reason if reason else ''} "
        "(run with LOG_LEVEL=DEBUG for the traceback, and please report it)"
    )


def database_problem(database_url: str, error: BaseException) -> str | None:
    """One line for a database that cannot be reached or used; None for other errors."""
    if not isinstance(error, SQLAlchemyError | OSError | TimeoutError):
        return None
    where = make_url(database_url).render_as_string(hide_password=True)
    reason = _first_line(error)
    detail = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
    return (
        f"cannot use the database at {where} (DATABASE_URL): {detail}. Check that it runs "
        "and accepts this user, then try again (`python -m bot check` tells more)"
    )


async def start_or_explain(server: BotServer) -> bool:
    """Start the server; on failure print why in one line, close what was opened, False."""
    try:
        await server.start()
    except Exception as error:
        log.debug("start-up failed", exc_info=True)
        print(f"ticketbot did not start: {explain(server, error)}", file=sys.stderr)
        await close_quietly(server)
        return False
    return True


async def close_quietly(server: BotServer) -> None:
    try:
        await server.stop()
    except Exception:
        log.debug("stopping after a failed start failed", exc_info=True)
    try:
        await server.core.close()
    except Exception:
        log.debug("closing the database after a failed start failed", exc_info=True)
