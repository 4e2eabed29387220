import Foundation

/// The built-in rule packs (docs/DOMAIN.md ("Regulation as code")): `cn-2026`, the default for
/// China, and `us-regf` and `uk-conc`, which show that the same engine serves other markets.
///
/// Each pack is a versioned data file, `Shared/Compliance/Packs/<id>.json` (format in
/// `RulePackFile.swift`), embedded in the binary and decoded and checked on first use;
/// `ComplianceTests` check that every file loads and that each rule text states the pack's
/// own numbers, so a text never disagrees with the limit the engine applies. Where the rule
/// table of docs/DOMAIN.md gives no number for a market, the limit is nil (no such rule) and
/// the field's comment says so; numbers that are Doorstep defaults rather than regulation
/// (visit caps, the third-party unreachable test outside China, the 24 h notice) say so in
/// their rule's source. The sources are cited as found when the packs were written; confirm
/// them against the original texts before relying on a pack in production.
public enum RulePacks {
    /// China, 2026 (default pack), in Simplified Chinese.
    ///
    /// Sources: NIFA 《互联网金融贷后催收业务指引》 (2024-05-15); GB/T 45251-2025; China Banking
    /// Association 《金融机构个人消费类贷款催收工作指引(试行)》 (2026-01-30); 《商业银行信用卡业务
    /// 监督管理办法》 (2011) Art. 68; 《消费金融公司管理办法》 (2024); PIPL Art. 56;
    /// 《银行业保险业消费投诉处理管理办法》 (2020).
    ///
    /// - contact hours 08:00-22:00 debtor-local, unless the debtor agreed (NIFA 2024, GB/T
    ///   45251-2025, CBA 2026);
    /// - at most 3 connected calls per debtor per day (NIFA 2024);
    /// - at most 6 unanswered call attempts per number per day (CBA 2026);
    /// - no weekly call limit and no quiet period after a conversation (the rule table gives none);
    /// - third parties only after 3 consecutive failed attempts or an invalid own number (CBA
    ///   2026; credit-card measures Art. 68);
    /// - visit caps 1 / 2 and a 7-day visit cool-down (Doorstep defaults);
    /// - crew of at least 2 (CBA 2026); 24 h notice (source documents); agency inspected within
    ///   12 months (CBA 2026); records kept 5 years (consumer finance) / 2 years (credit cards),
    ///   impact assessments 3 years; complaints resolved in 15 days, complex 30, one 30-day
    ///   extension.
    public static let cn2026 = builtIn(PackageResources.cn_2026_json, file: "cn-2026.json")

    /// United States, Regulation F (12 CFR part 1006, implementing the FDCPA), in English.
    ///
    /// - contact hours 08:00-21:00 at the consumer's location, unless the consumer agreed
    ///   (12 CFR §1006.6(b)(1)(i); FDCPA §805(a)(1));
    /// - at most 7 call attempts to a person in 7 days, and no call within the 7 days that
    ///   begin on the day of a conversation (12 CFR §1006.14(b)(2), presumptions of
    ///   harassment);
    /// - no daily call limits (the rule table gives none: nil);
    /// - third-party contact: FDCPA §805(b) and 12 CFR §1006.6(d) restrict it; the rule
    ///   table gives no unreachable test for the US, so the cn-2026 test (3 consecutive failures or
    ///   an invalid own number) applies as a Doorstep default, stated in the rule's source;
    /// - crew size 1, 24 h notice, visit caps 1 / 2, a 7-day visit cool-down: Doorstep defaults
    ///   (the rule table gives no US number);
    /// - no agency inspection interval, record retention or complaint deadline: the rule
    ///   table gives none for the US (nil). Regulation F §1006.100 sets a record-retention period
    ///   that this pack does not encode yet.
    public static let usRegF = builtIn(PackageResources.us_regf_json, file: "us-regf.json")

    /// United Kingdom, FCA Consumer Credit sourcebook chapter 7 (CONC 7), in English.
    ///
    /// - contact hours 08:00-21:00 local: CONC 7.9.4R forbids contact "at unreasonable times"
    ///   and asks firms to respect the customer's reasonable requests about when they are
    ///   contacted, but sets no hours. 08:00-21:00 is Doorstep's reading of "reasonable":
    ///   the narrower of the two windows the rule table gives (the one US law presumes
    ///   convenient), so a contact allowed here is allowed in both other packs too. Confirm
    ///   it with UK compliance before use; the customer's agreed time overrides it
    ///   (CONC 7.9.4R's "reasonable requests");
    /// - no daily or weekly call limits and no quiet period: the rule table gives none for the UK
    ///   (nil);
    /// - third-party contact: CONC 7.9.7R (third parties must not learn of the debt);
    ///   the rule table gives no unreachable test for the UK, so the cn-2026 test applies as a
    ///   Doorstep default, stated in the rule's source;
    /// - notice of a first visit: CONC 7.9 requires it but sets no period; 24 h is the
    ///   Doorstep default; crew size 1, visit caps 1 / 2 and the 7-day visit cool-down are
    ///   Doorstep defaults;
    /// - no agency inspection interval, record retention or complaint deadline: the rule
    ///   table gives none for the UK (nil).
    public static let ukConc = builtIn(PackageResources.uk_conc_json, file: "uk-conc.json")

    /// Every built-in pack, the default (`cn2026`) first.
    public static let all: [RulePack] = [cn2026, usRegF, ukConc]

    /// The built-in pack with this id ("cn-2026", "us-regf", "uk-conc"), or nil.
    public static func named(_ id: String) -> RulePack? {
        all.first { $0.id == id }
    }

    /// What `--rule-pack` names: a built-in pack id, or the path of a pack file (anything
    /// containing "/" or ending in ".json"), loaded and checked.
    public static func resolve(_ value: String) throws(RulePackFileError) -> RulePack {
        if value.contains("/") || value.hasSuffix(".json") { return try RulePack.load(path: value) }
        guard let pack = named(value) else {
            throw RulePackFileError(source: value, problem: "is neither a built-in pack (\(all.map(\.id).joined(separator: ", "))) nor a .json file")
        }
        return pack
    }

    /// A pack file shipped with the binary. A built-in file that does not load is a build
    /// defect (caught by ComplianceTests), not a configuration error, so it stops the process.
    private static func builtIn(_ bytes: [UInt8], file: String) -> RulePack {
        do {
            return try RulePack.decode(json: Data(bytes), source: "built-in " + file)
        } catch {
            fatalError("\(error)")
        }
    }
}
