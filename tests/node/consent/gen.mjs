// Random consent states encoded by IAB's own libraries, printed as JSON for sluicegate's oracle tests.
// usage: node gen.mjs <count> <seed>
// TCF: @iabtechlabtcf/core's SegmentEncoder (the core-segment bit encoder; TCString.encode would
// also need a Global Vendor List). GPP: @iabgpp/cmpapi's GppModel. Expected values are what the
// same libraries decode from the string they produced.
import { TCModel, TCString, SegmentEncoder, Segment } from "@iabtechlabtcf/core";
import { GppModel } from "@iabgpp/cmpapi";

const count = Number(process.argv[2] || 200);
let state = Number(process.argv[3] || 1) >>> 0;
function rnd() { // mulberry32
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (xs) => xs[int(xs.length)];
const subset = (max, p) => { const out = []; for (let i = 1; i <= max; i++) if (rnd() < p) out.push(i); return out; };
const letters = () => String.fromCharCode(65 + int(26)) + String.fromCharCode(65 + int(26));

function tcfCase() {
  const m = new TCModel();
  m.cmpId = 2 + int(4000); m.cmpVersion = int(4000); m.consentScreen = int(60);
  m.vendorListVersion = 1 + int(4000); m.policyVersion = pick([2, 4, 5]);
  m.consentLanguage = letters(); m.publisherCountryCode = letters();
  m.isServiceSpecific = rnd() < 0.5; m.useNonStandardTexts = rnd() < 0.2; m.purposeOneTreatment = rnd() < 0.2;
  m.purposeConsents.set(subset(24, rnd()));
  m.purposeLegitimateInterests.set(subset(24, rnd() * 0.5));
  m.specialFeatureOptins.set(subset(12, 0.3));
  const maxV = pick([0, 10, 300, 1200]);
  const dense = rnd() < 0.5;
  const vc = dense ? subset(maxV, 0.5) : (maxV ? [1, 2, 3, 4, 5, maxV].filter((v) => v <= maxV) : []);
  m.vendorConsents.set(vc);
  m.vendorLegitimateInterests.set(subset(maxV, 0.05));
  m.created = new Date((1500000000 + int(300000000)) * 1000 + int(10) * 100);
  m.lastUpdated = new Date(m.created.getTime() + int(1000000) * 100);
  const s = SegmentEncoder.encode(m, Segment.CORE);
  const d = TCString.decode(s);
  return {
    kind: "tcf", string: s,
    expect: {
      version: d.version, created: Math.round(d.created.getTime() / 100), lastUpdated: Math.round(d.lastUpdated.getTime() / 100),
      cmpId: d.cmpId, cmpVersion: d.cmpVersion, consentScreen: d.consentScreen, consentLanguage: d.consentLanguage,
      vendorListVersion: d.vendorListVersion, policyVersion: d.policyVersion, isServiceSpecific: d.isServiceSpecific,
      useNonStandardTexts: d.useNonStandardTexts, purposeOneTreatment: d.purposeOneTreatment,
      publisherCountryCode: d.publisherCountryCode,
      purposeConsents: [...d.purposeConsents.values()].filter((i) => d.purposeConsents.has(i)),
      purposeLegitimateInterests: [...d.purposeLegitimateInterests.values()].filter((i) => d.purposeLegitimateInterests.has(i)),
      specialFeatureOptins: [...d.specialFeatureOptins.values()].filter((i) => d.specialFeatureOptins.has(i)),
      vendorConsents: [...d.vendorConsents.values()].filter((i) => d.vendorConsents.has(i)),
      vendorLegitimateInterests: [...d.vendorLegitimateInterests.values()].filter((i) => d.vendorLegitimateInterests.has(i)),
    },
  };
}

const US = {
  usnat: { sharing: true, ta: true, gpc: true }, usca: { sharing: true, ta: false, gpc: true },
  usva: { ta: true }, usco: { ta: true, gpc: true }, usut: { ta: true }, usct: { ta: true, gpc: true },
  usfl: { ta: true }, usmt: { ta: true, gpc: true }, usor: { ta: true, gpc: true }, ustx: { ta: true, gpc: true },
  usde: { ta: true, gpc: true }, usia: { ta: true, gpc: true }, usne: { ta: true, gpc: true },
  usnh: { ta: true, gpc: true }, usnj: { ta: true, gpc: true }, ustn: { ta: true, gpc: true },
  usmn: { ta: true, gpc: true }, usmd: { ta: true, gpc: true }, usin: { ta: true }, usky: { ta: true },
  usri: { ta: true },
};

function gppCase() {
  const model = new GppModel();
  const names = Object.keys(US).filter(() => rnd() < 0.15);
  if (rnd() < 0.4) names.push("tcfeuv2");
  if (rnd() < 0.3) names.push("uspv1");
  if (!names.length) names.push(pick(Object.keys(US)));
  for (const name of names) {
    if (name === "tcfeuv2") {
      const purposes = Array.from({ length: 24 }, () => rnd() < 0.5);
      model.setFieldValue(name, "PurposeConsents", purposes);
      model.setFieldValue(name, "CmpId", 1 + int(4000));
      model.setFieldValue(name, "VendorConsents", subset(50, 0.3));
    } else if (name === "uspv1") {
      model.setFieldValue(name, "Notice", pick(["Y", "N", "-"]));
      model.setFieldValue(name, "OptOutSale", pick(["Y", "N", "-"]));
      model.setFieldValue(name, "LspaCovered", pick(["Y", "N", "-"]));
    } else {
      const f = US[name];
      model.setFieldValue(name, "SaleOptOut", int(3));
      if (f.sharing) model.setFieldValue(name, "SharingOptOut", int(3));
      if (f.ta) model.setFieldValue(name, "TargetedAdvertisingOptOut", int(3));
      if (f.gpc) {
        const inc = rnd() < 0.6;
        model.setFieldValue(name, "GpcSegmentIncluded", inc);
        if (inc) model.setFieldValue(name, "Gpc", rnd() < 0.5);
      }
    }
  }
  const s = model.encode();
  const d = new GppModel(s);
  const sections = {};
  for (const name of names) {
    if (name === "tcfeuv2") {
      const pc = d.getFieldValue(name, "PurposeConsents");
      sections[name] = { purposeConsents: pc.map((v, i) => (v ? i + 1 : 0)).filter(Boolean) };
    } else if (name === "uspv1") {
      sections[name] = { optOutSale: d.getFieldValue(name, "OptOutSale"), notice: d.getFieldValue(name, "Notice") };
    } else {
      const f = US[name];
      sections[name] = {
        saleOptOut: d.getFieldValue(name, "SaleOptOut"),
        sharingOptOut: f.sharing ? d.getFieldValue(name, "SharingOptOut") : 0,
        targetedAdvertisingOptOut: f.ta ? d.getFieldValue(name, "TargetedAdvertisingOptOut") : 0,
        gpc: f.gpc && d.getFieldValue(name, "GpcSegmentIncluded") ? d.getFieldValue(name, "Gpc") : null,
      };
    }
  }
  return { kind: "gpp", string: s, expect: { sectionIds: d.getSectionIds(), sections } };
}

const out = [];
for (let i = 0; i < count; i++) out.push(i % 2 ? gppCase() : tcfCase());
process.stdout.write(JSON.stringify(out));
