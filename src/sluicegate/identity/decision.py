"""Jurisdiction and the consent decision table (what allows minting an ID, what is a withdrawal).

* GDPR (country in ``gdpr_countries``): allow iff the effective TCF grants Purpose 1; a TCF
  string without Purpose 1 is an explicit withdrawal.
* US privacy state (US + region in ``us_privacy_states``): deny on GPC, a GPP US opt-out or a USP
  opt-out (each also a withdrawal); else a TCF string decides by Purpose 1 (without it: withdrawal);
  else a GPP US section or a USP string allows; else (no signals) deny.
* Non-regulated (any other known country): allow; never a withdrawal.
* Unknown (no trusted geo header, or a US visitor without a region): deny; never a withdrawal.

"Effective TCF": the ``euconsent-v2`` string and GPP section 2; when both are present, both must
grant Purpose 1 (the restrictive choice). A GPP US opt-out is any applicable US section with
SaleOptOut, SharingOptOut or TargetedAdvertisingOptOut = 1 (opted out), or its GPC flag set.
Pure functions; must not know HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sluicegate.identity.consent import GppString, TcString, UsPrivacy


class Jurisdiction(Enum):
    GDPR = "gdpr"
    US_STATE = "us_state"
    NON_REGULATED = "non_regulated"
    UNKNOWN = "unknown"


def jurisdiction(country: str, region: str, gdpr: frozenset[str], us_states: frozenset[str]) -> Jurisdiction:
    c = country.strip().upper()
    if not c or len(c) != 2 or not c.isalpha() or c in ("XX", "T1"):
        return Jurisdiction.UNKNOWN
    if c in gdpr:
        return Jurisdiction.GDPR
    if c == "US":
        r = region.strip().upper()
        if "-" in r:
            r = r.rsplit("-", 1)[1]
        if not r:
            return Jurisdiction.UNKNOWN  # a US visitor whose state is unknown: cannot rule out a privacy state
        return Jurisdiction.US_STATE if r in us_states else Jurisdiction.NON_REGULATED
    return Jurisdiction.NON_REGULATED


@dataclass(frozen=True)
class Signals:
    tcf: TcString | None = None
    gpp: GppString | None = None
    usp: UsPrivacy | None = None
    gpc: bool = False

    def tcf_strings(self) -> list[TcString]:
        out = [t for t in (self.tcf, self.gpp.tcf if self.gpp else None) if t is not None]
        return out

    def tcf_purpose1(self) -> bool | None:
        """None: no TCF at all; else whether every TCF source grants Purpose 1."""
        tcs = self.tcf_strings()
        if not tcs:
            return None
        return all(t.purpose(1) for t in tcs)

    def effective_usp(self) -> UsPrivacy | None:
        return self.usp or (self.gpp.usp if self.gpp else None)

    def gpp_us_opt_out(self) -> bool:
        return bool(self.gpp and any(s.opted_out for s in self.gpp.us))

    def gpp_us_present(self) -> bool:
        return bool(self.gpp and self.gpp.us)


@dataclass(frozen=True)
class Decision:
    allow: bool
    withdrawal: bool
    jurisdiction: Jurisdiction


def decide(j: Jurisdiction, s: Signals) -> Decision:
    if j is Jurisdiction.GDPR:
        p1 = s.tcf_purpose1()
        return Decision(p1 is True, p1 is False, j)
    if j is Jurisdiction.US_STATE:
        usp = s.effective_usp()
        p1 = s.tcf_purpose1()
        opt_out = s.gpc or s.gpp_us_opt_out() or bool(usp and usp.opted_out)
        if opt_out:
            return Decision(False, True, j)
        if p1 is not None:
            return Decision(p1, not p1, j)
        if s.gpp_us_present() or usp is not None:
            return Decision(True, False, j)
        return Decision(False, False, j)
    if j is Jurisdiction.NON_REGULATED:
        return Decision(True, False, j)
    return Decision(False, False, j)
