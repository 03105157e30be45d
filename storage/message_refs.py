"""Posted messages found by the start of their reference (all the pages of one incident)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MessageRefRow


async def refs_starting(session: AsyncSession, prefix: str) -> Sequence[MessageRefRow]:
    """Every remembered message whose reference starts with `prefix`, oldest first."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(MessageRefRow)
        .where(MessageRefRow.ref.like(f"{escaped}%", escape="\\"))
        .order_by(MessageRefRow.at, MessageRefRow.ref)
    )
    return (await session.scalars(query)).all()
