"""`jianfei ledger verify`: recompute every balance from the postings and report any difference."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from app.ledger.models import VerifyReport
from app.ledger.service import ACCOUNT, ENTRY, POSTING


def verify(session: Session, community_id: int | None = None) -> VerifyReport:
    acct_cond = [ACCOUNT.c.household_id.is_not(None)]
    entry_cond = []
    if community_id is not None:
        acct_cond.append(ACCOUNT.c.community_id == community_id)
        entry_cond.append(ENTRY.c.community_id == community_id)
    sums = (
        select(POSTING.c.account_id, func.sum(POSTING.c.amount).label("total"), func.count().label("n"), func.max(POSTING.c.seq).label("last_seq"))
        .group_by(POSTING.c.account_id)
        .subquery()
    )
    rows = session.execute(
        select(ACCOUNT.c.id, ACCOUNT.c.household_id, ACCOUNT.c.balance, ACCOUNT.c.version, sums.c.total, sums.c.n, sums.c.last_seq)
        .select_from(ACCOUNT.outerjoin(sums, sums.c.account_id == ACCOUNT.c.id))
        .where(*acct_cond)
    ).all()
    mismatches, chain = [], []
    for _account_id, household_id, balance, version, total, n, last_seq in rows:
        total, n = int(total or 0), int(n or 0)
        if total != balance or balance < 0:
            mismatches.append({"household_id": household_id, "balance": balance, "from_postings": total})
        if n != version or (n and last_seq != version):
            chain.append({"household_id": household_id, "version": version, "postings": n, "last_seq": last_seq})
    # Held points on each household row must equal the household's share of the `held` account.
    held_account = ACCOUNT.alias("held_account")
    held_sums = (
        select(ENTRY.c.household_id, func.sum(POSTING.c.amount).label("held"))
        .select_from(POSTING.join(held_account, held_account.c.id == POSTING.c.account_id).join(ENTRY, ENTRY.c.id == POSTING.c.entry_id))
        .where(held_account.c.kind == "held", held_account.c.household_id.is_(None), *entry_cond)
        .group_by(ENTRY.c.household_id)
        .subquery()
    )
    for household_id, held, from_postings in session.execute(
        select(ACCOUNT.c.household_id, ACCOUNT.c.held, func.coalesce(held_sums.c.held, 0))
        .select_from(ACCOUNT.outerjoin(held_sums, held_sums.c.household_id == ACCOUNT.c.household_id))
        .where(*acct_cond)
    ).all():
        if int(held) != int(from_postings):
            mismatches.append({"household_id": household_id, "held": int(held), "held_from_postings": int(from_postings)})
    # The running balance on the newest posting must equal the account balance.
    last = session.execute(
        select(ACCOUNT.c.household_id, ACCOUNT.c.balance, POSTING.c.balance_after)
        .select_from(POSTING.join(ACCOUNT, (ACCOUNT.c.id == POSTING.c.account_id) & (POSTING.c.seq == ACCOUNT.c.version)))
        .where(*acct_cond)
    ).all()
    for household_id, balance, after in last:
        if after != balance:
            chain.append({"household_id": household_id, "balance": balance, "last_balance_after": after})
    unbalanced = session.execute(
        select(POSTING.c.entry_id)
        .select_from(POSTING.join(ENTRY, ENTRY.c.id == POSTING.c.entry_id))
        .where(*entry_cond)
        .group_by(POSTING.c.entry_id)
        .having(func.sum(POSTING.c.amount) != 0)
    ).scalars().all()
    entries = session.execute(select(func.count()).select_from(ENTRY).where(*entry_cond)).scalar_one()
    orphans = session.execute(
        select(ENTRY.c.id).where(*entry_cond, ~select(POSTING.c.id).where(POSTING.c.entry_id == ENTRY.c.id).exists())
    ).scalars().all()
    return VerifyReport(
        accounts_checked=len(rows),
        entries_checked=int(entries),
        balance_mismatches=mismatches,
        unbalanced_entries=sorted(set(unbalanced) | set(orphans)),
        chain_breaks=chain,
    )
