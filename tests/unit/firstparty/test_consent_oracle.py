"""Oracle: consent strings encoded by IAB's own Node libraries, decoded by sluicegate.

``tests/node/consent/gen.mjs`` draws random consent states and encodes them with
``@iabtechlabtcf/core`` (TCF) and ``@iabgpp/cmpapi`` (GPP); every field the decision table uses
(and the other core fields) must read the same here. Needs ``tests/node/setup.sh`` (npm ci).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sluicegate.identity.consent import US_SECTIONS, decode_gpp, decode_tcf

HERE = Path(__file__).resolve().parents[2] / "node" / "consent"


def _cases(count: int, seed: int) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None, "node is required (tests/node/setup.sh)"
    assert (HERE / "node_modules" / "@iabgpp" / "cmpapi").is_dir(), "run tests/node/setup.sh first"
    out = subprocess.run([node, "gen.mjs", str(count), str(seed)], cwd=HERE, capture_output=True, check=True)
    cases: list[dict[str, Any]] = json.loads(out.stdout)
    return cases


@pytest.fixture(scope="module")
def cases() -> list[dict[str, Any]]:
    return _cases(600, 20261206)


def test_tcf_core_fields_agree(cases: list[dict[str, Any]]) -> None:
    tcf = [c for c in cases if c["kind"] == "tcf"]
    assert len(tcf) == 300
    for c in tcf:
        e = c["expect"]
        tc = decode_tcf(c["string"])
        assert tc is not None, c["string"]
        got = {
            "version": tc.version,
            "created": tc.created,
            "lastUpdated": tc.last_updated,
            "cmpId": tc.cmp_id,
            "cmpVersion": tc.cmp_version,
            "consentScreen": tc.consent_screen,
            "consentLanguage": tc.consent_language,
            "vendorListVersion": tc.vendor_list_version,
            "policyVersion": tc.policy_version,
            "isServiceSpecific": tc.is_service_specific,
            "useNonStandardTexts": tc.use_non_standard_texts,
            "purposeOneTreatment": tc.purpose_one_treatment,
            "publisherCountryCode": tc.publisher_cc,
            "purposeConsents": sorted(tc.purpose_consents),
            "purposeLegitimateInterests": sorted(tc.purpose_li),
            "specialFeatureOptins": sorted(tc.special_features),
            "vendorConsents": sorted(tc.vendor_consents),
            "vendorLegitimateInterests": sorted(tc.vendor_li),
        }
        assert got == {k: sorted(v) if isinstance(v, list) else v for k, v in e.items()}, c["string"]
    # the draw covered both answers for Purpose 1 (the field the decision table reads)
    assert {1 in c["expect"]["purposeConsents"] for c in tcf} == {True, False}


def test_gpp_sections_agree(cases: list[dict[str, Any]]) -> None:
    gpp = [c for c in cases if c["kind"] == "gpp"]
    names = {v[0]: k for k, v in US_SECTIONS.items()}
    seen_opt_out = set()
    for c in gpp:
        e = c["expect"]
        g = decode_gpp(c["string"])
        assert g is not None, c["string"]
        assert g.section_ids == e["sectionIds"], c["string"]
        for name, fields in e["sections"].items():
            if name == "tcfeuv2":
                assert g.tcf is not None
                assert sorted(g.tcf.purpose_consents) == fields["purposeConsents"], c["string"]
            elif name == "uspv1":
                assert g.usp is not None
                assert (g.usp.opt_out, g.usp.notice) == (fields["optOutSale"], fields["notice"]), c["string"]
            else:
                sec = next(s for s in g.us if s.section_id == names[name])
                got = {
                    "saleOptOut": sec.sale_opt_out,
                    "sharingOptOut": sec.sharing_opt_out,
                    "targetedAdvertisingOptOut": sec.targeted_advertising_opt_out,
                    "gpc": sec.gpc,
                }
                assert got == fields, (name, c["string"])
                seen_opt_out.add(sec.opted_out)
    assert seen_opt_out == {True, False}


@pytest.mark.parametrize(
    "bad",
    [
        "", "!!!", "CPXxRfAPXxRfA", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "A" * 20000, "DBABMA~",
        "DBACNY~CP~1YN", "~~~~",
    ],
)
def test_malformed_is_absent_never_an_exception(bad: str) -> None:
    assert decode_tcf(bad) is None
    assert decode_gpp(bad) is None
