/// The built-in rule packs (DESIGN.md section 8): `cn-2026`, the default for China, and
/// `us-regf` and `uk-conc`, which show that the same engine serves other markets.
///
/// Each pack's rule texts are written from its own numbers, so a text never disagrees with
/// the limit the engine applies. Where section 8 gives no number for a market, the limit is
/// nil (no such rule) and the field's comment says so; numbers that are Doorstep defaults
/// rather than regulation (visit caps, the third-party unreachable test outside China, the
/// 24 h notice) say so in their rule's source. The sources are cited as DESIGN.md found them;
/// confirm them against the original texts before relying on a pack in production.
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
    /// - no weekly call limit and no quiet period after a conversation (section 8 gives none);
    /// - third parties only after 3 consecutive failed attempts or an invalid own number (CBA
    ///   2026; credit-card measures Art. 68);
    /// - crew of at least 2 (CBA 2026); 24 h notice (source documents); agency inspected within
    ///   12 months (CBA 2026); records kept 5 years (consumer finance) / 2 years (credit cards),
    ///   impact assessments 3 years; complaints resolved in 15 days, complex 30, one 30-day
    ///   extension.
    public static let cn2026: RulePack = {
        var pack = RulePack(
            id: "cn-2026",
            version: "2026.1",
            name: "中国个人消费贷款催收合规规则 (2026)",
            language: "zh-Hans",
            contactHoursStartMinutes: 8 * 60,
            contactHoursEndMinutes: 22 * 60,
            debtorAgreedTimeOverridesContactHours: true,
            dailyConnectedCallsPerDebtor: 3,
            dailyCallAttemptsPerNumber: 6,
            weeklyCallAttempts: nil,
            quietDaysAfterConversation: nil,
            thirdPartyAfterConsecutiveFailures: 3,
            crewSize: 2,
            advanceNoticeHours: 24,
            visitDailyCap: 1,
            visitWeeklyCap: 2,
            inspectionValidityMonths: 12,
            retention: RulePack.RecordRetention(consumerFinanceYears: 5, creditCardYears: 2, impactAssessmentYears: 3),
            complaintSLA: RulePack.ComplaintSLA(standardDays: 15, complexDays: 30, extensionDays: 30, maxExtensions: 1),
            rules: []
        )
        pack.rules = RulePacks.chineseRules(of: pack)
        return pack
    }()

    /// United States, Regulation F (12 CFR part 1006, implementing the FDCPA), in English.
    ///
    /// - contact hours 08:00-21:00 at the consumer's location, unless the consumer agreed
    ///   (12 CFR §1006.6(b)(1)(i); FDCPA §805(a)(1));
    /// - at most 7 call attempts to a person in 7 days, and no call within the 7 days that
    ///   begin on the day of a conversation (12 CFR §1006.14(b)(2), presumptions of
    ///   harassment);
    /// - no daily call limits (section 8 gives none: nil);
    /// - third-party contact: FDCPA §805(b) and 12 CFR §1006.6(d) restrict it; section 8
    ///   gives no unreachable test for the US, so the cn-2026 test (3 consecutive failures or
    ///   an invalid own number) applies as a Doorstep default, stated in the rule's source;
    /// - crew size 1, 24 h notice, visit caps 1 / 2: Doorstep defaults (section 8 gives no US
    ///   number);
    /// - no agency inspection interval, record retention or complaint deadline: section 8
    ///   gives none for the US (nil). Regulation F §1006.100 sets a record-retention period
    ///   that this pack does not encode yet.
    public static let usRegF: RulePack = {
        var pack = RulePack(
            id: "us-regf",
            version: "2026.1",
            name: "United States: Regulation F (12 CFR part 1006)",
            language: "en",
            contactHoursStartMinutes: 8 * 60,
            contactHoursEndMinutes: 21 * 60,
            debtorAgreedTimeOverridesContactHours: true,
            dailyConnectedCallsPerDebtor: nil,
            dailyCallAttemptsPerNumber: nil,
            weeklyCallAttempts: 7,
            quietDaysAfterConversation: 7,
            thirdPartyAfterConsecutiveFailures: 3,
            crewSize: 1,
            advanceNoticeHours: 24,
            visitDailyCap: 1,
            visitWeeklyCap: 2,
            inspectionValidityMonths: nil,
            retention: nil,
            complaintSLA: nil,
            rules: []
        )
        pack.rules = RulePacks.englishRules(
            of: pack,
            contactHoursSource: "Regulation F, 12 CFR §1006.6(b)(1)(i); FDCPA §805(a)(1), 15 U.S.C. §1692c(a)(1)",
            thirdPartySource: "FDCPA §805(b), 15 U.S.C. §1692c(b); Regulation F, 12 CFR §1006.6(d). "
                + "The unreachable test (\(pack.thirdPartyAfterConsecutiveFailures) consecutive failed attempts "
                + "or an invalid own number) is a Doorstep default",
            advanceNoticeSource: RulePacks.defaultSourceEnglish,
            weeklySource: "Regulation F, 12 CFR §1006.14(b)(2)(i)(A)",
            afterConversationSource: "Regulation F, 12 CFR §1006.14(b)(2)(i)(B)"
        )
        return pack
    }()

    /// United Kingdom, FCA Consumer Credit sourcebook chapter 7 (CONC 7), in English.
    ///
    /// - contact hours 08:00-21:00 local: CONC 7.9.4R forbids contact "at unreasonable times"
    ///   and asks firms to respect the customer's reasonable requests about when they are
    ///   contacted, but sets no hours. 08:00-21:00 is Doorstep's reading of "reasonable":
    ///   the narrower of the two windows section 8 gives (the one US law presumes
    ///   convenient), so a contact allowed here is allowed in both other packs too. Confirm
    ///   it with UK compliance before use; the customer's agreed time overrides it
    ///   (CONC 7.9.4R's "reasonable requests");
    /// - no daily or weekly call limits and no quiet period: section 8 gives none for the UK
    ///   (nil);
    /// - third-party contact: CONC 7.9.7R (third parties must not learn of the debt);
    ///   section 8 gives no unreachable test for the UK, so the cn-2026 test applies as a
    ///   Doorstep default, stated in the rule's source;
    /// - notice of a first visit: CONC 7.9 requires it but sets no period; 24 h is the
    ///   Doorstep default; crew size 1 and visit caps 1 / 2 are Doorstep defaults;
    /// - no agency inspection interval, record retention or complaint deadline: section 8
    ///   gives none for the UK (nil).
    public static let ukConc: RulePack = {
        var pack = RulePack(
            id: "uk-conc",
            version: "2026.1",
            name: "United Kingdom: FCA CONC 7 (arrears, default and recovery)",
            language: "en",
            contactHoursStartMinutes: 8 * 60,
            contactHoursEndMinutes: 21 * 60,
            debtorAgreedTimeOverridesContactHours: true,
            dailyConnectedCallsPerDebtor: nil,
            dailyCallAttemptsPerNumber: nil,
            weeklyCallAttempts: nil,
            quietDaysAfterConversation: nil,
            thirdPartyAfterConsecutiveFailures: 3,
            crewSize: 1,
            advanceNoticeHours: 24,
            visitDailyCap: 1,
            visitWeeklyCap: 2,
            inspectionValidityMonths: nil,
            retention: nil,
            complaintSLA: nil,
            rules: []
        )
        pack.rules = RulePacks.englishRules(
            of: pack,
            contactHoursSource: "FCA Handbook CONC 7.9.4R (no contact at unreasonable times; CONC sets no hours, "
                + "\(pack.contactWindowText) is the Doorstep reading)",
            thirdPartySource: "FCA Handbook CONC 7.9.7R. The unreachable test (\(pack.thirdPartyAfterConsecutiveFailures) "
                + "consecutive failed attempts or an invalid own number) is a Doorstep default",
            advanceNoticeSource: "FCA Handbook CONC 7.9 (notice of a first visit; CONC sets no period, "
                + "\(pack.advanceNoticeHours) h is the Doorstep default)",
            weeklySource: "",
            afterConversationSource: ""
        )
        return pack
    }()

    /// Every built-in pack, the default (`cn2026`) first.
    public static let all: [RulePack] = [cn2026, usRegF, ukConc]

    /// The built-in pack with this id ("cn-2026", "us-regf", "uk-conc"), or nil.
    public static func named(_ id: String) -> RulePack? {
        all.first { $0.id == id }
    }

    // MARK: Rule texts

    private static let defaultSourceChinese = "Doorstep 默认规则（规则包未引用监管条文）"
    private static let defaultSourceEnglish = "Doorstep default (this pack cites no regulation for it)"

    private static let nifa2024 = "中国互联网金融协会《互联网金融贷后催收业务指引》(2024-05-15)"
    private static let gbt45251 = "GB/T 45251-2025"
    private static let cba2026 = "中国银行业协会《金融机构个人消费类贷款催收工作指引（试行）》(2026-01-30)"
    private static let creditCardArt68 = "《商业银行信用卡业务监督管理办法》(2011) 第六十八条"

    /// The cn-2026 rules, in Simplified Chinese, written from the pack's numbers.
    private static func chineseRules(of pack: RulePack) -> [RulePack.Rule] {
        let start = RulePack.clockText(minutes: pack.contactHoursStartMinutes)
        let end = RulePack.clockText(minutes: pack.contactHoursEndMinutes)
        var rules: [RulePack.Rule] = [
            RulePack.Rule(
                id: RuleID.contactHours,
                text: "每日\(end)至次日\(start)（债务人当地时间）不得以电话、短信、上门等任何方式催收，债务人同意的时间除外",
                source: "\(nifa2024)；\(gbt45251)；\(cba2026)"),
        ]
        if let limit = pack.dailyConnectedCallsPerDebtor {
            rules.append(RulePack.Rule(
                id: RuleID.dailyConnectedCalls,
                text: "每名债务人每日接通的催收电话不超过\(limit)次（所有贷款机构渠道和催收机构合计）",
                source: nifa2024))
        }
        if let limit = pack.dailyCallAttemptsPerNumber {
            rules.append(RulePack.Rule(
                id: RuleID.dailyCallAttempts,
                text: "同一号码每日未接通的催收电话不超过\(limit)次",
                source: cba2026))
        }
        rules += [
            RulePack.Rule(
                id: RuleID.thirdPartyContact,
                text: "仅在债务人失联（本人号码无效或连续\(pack.thirdPartyAfterConsecutiveFailures)次联系失败）后方可联系紧急联系人等第三方，且不得向第三方透露债务信息",
                source: "\(cba2026)；\(creditCardArt68)"),
            RulePack.Rule(
                id: RuleID.crewSize,
                text: "上门催收须由不少于\(pack.crewSize)名催收人员共同进行，出示证件，经同意方可进入住所",
                source: cba2026),
            RulePack.Rule(
                id: RuleID.advanceNotice,
                text: "上门前至少\(pack.advanceNoticeHours)小时告知债务人上门的时间和目的",
                source: "Doorstep 业务流程（来源文件：提前联系客户，告知上门的时间和目的）"),
            RulePack.Rule(
                id: RuleID.visitDailyCap,
                text: "同一账户每日（债务人当地日期）上门不超过\(pack.visitDailyCap)次",
                source: defaultSourceChinese),
            RulePack.Rule(
                id: RuleID.visitWeeklyCap,
                text: "同一账户任意7日内上门不超过\(pack.visitWeeklyCap)次",
                source: defaultSourceChinese),
            RulePack.Rule(
                id: RuleID.agencyLicence,
                text: "催收机构的经营资质在上门日期须有效",
                source: cba2026),
        ]
        if let months = pack.inspectionValidityMonths {
            rules.append(RulePack.Rule(
                id: RuleID.agencyInspection,
                text: "催收机构须在上门日期前\(months)个月内通过年度检查",
                source: cba2026))
        }
        rules += [
            RulePack.Rule(
                id: RuleID.agencyStatus,
                text: "催收机构须在白名单内且处于有效状态",
                source: cba2026),
            RulePack.Rule(
                id: RuleID.collectorCertification,
                text: "每名催收人员的资格证书在上门日期须有效",
                source: defaultSourceChinese),
            RulePack.Rule(
                id: RuleID.collectorStatus,
                text: "被暂停（含投诉调查期间）的催收人员不得参与上门",
                source: defaultSourceChinese),
            RulePack.Rule(
                id: RuleID.evidenceRequired,
                text: "上门须提交录音录像证据（编号及SHA-256摘要）后方可结束",
                source: defaultSourceChinese),
        ]
        if let retention = pack.retention {
            rules.append(RulePack.Rule(
                id: RuleID.recordRetention,
                text: "催收记录和录音至少保存\(retention.consumerFinanceYears)年（消费金融）、\(retention.creditCardYears)年（信用卡）；个人信息保护影响评估报告和处理情况记录至少保存\(retention.impactAssessmentYears)年",
                source: "《消费金融公司管理办法》(2024)；\(creditCardArt68)；《中华人民共和国个人信息保护法》第五十六条"))
        }
        if let sla = pack.complaintSLA {
            rules.append(RulePack.Rule(
                id: RuleID.complaintSLA,
                text: "投诉须在受理后\(sla.standardDays)日内处理完毕，情况复杂的\(sla.complexDays)日内；经批准可延长\(sla.maxExtensions)次，每次不超过\(sla.extensionDays)日",
                source: "《银行业保险业消费投诉处理管理办法》(2020)"))
        }
        return rules
    }

    /// The rules of an English-language pack, written from the pack's numbers; the sources
    /// that differ between markets are passed in (empty where the pack has no such rule).
    private static func englishRules(
        of pack: RulePack,
        contactHoursSource: String,
        thirdPartySource: String,
        advanceNoticeSource: String,
        weeklySource: String,
        afterConversationSource: String
    ) -> [RulePack.Rule] {
        let start = RulePack.clockText(minutes: pack.contactHoursStartMinutes)
        let end = RulePack.clockText(minutes: pack.contactHoursEndMinutes)
        var rules: [RulePack.Rule] = [
            RulePack.Rule(
                id: RuleID.contactHours,
                text: "No collection call, message or visit before \(start) or from \(end) local time at the debtor's location, unless the debtor agreed to the time",
                source: contactHoursSource),
        ]
        if let limit = pack.weeklyCallAttempts {
            rules.append(RulePack.Rule(
                id: RuleID.weeklyCallAttempts,
                text: "At most \(limit) telephone calls to a person within 7 days",
                source: weeklySource))
        }
        if let days = pack.quietDaysAfterConversation {
            rules.append(RulePack.Rule(
                id: RuleID.callAfterConversation,
                text: "No telephone call to the debtor within \(days) consecutive days after a telephone conversation with them, the day of the conversation being the first day",
                source: afterConversationSource))
        }
        rules += [
            RulePack.Rule(
                id: RuleID.thirdPartyContact,
                text: "Third parties are contacted only once the debtor is unreachable (own number invalid or \(pack.thirdPartyAfterConsecutiveFailures) consecutive failed attempts) and are never told about the debt",
                source: thirdPartySource),
            RulePack.Rule(
                id: RuleID.crewSize,
                text: "A visit is made by at least \(pack.crewSize) collector\(pack.crewSize == 1 ? "" : "s")",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.advanceNotice,
                text: "The debtor is told a visit's time and purpose at least \(pack.advanceNoticeHours) hours before it",
                source: advanceNoticeSource),
            RulePack.Rule(
                id: RuleID.visitDailyCap,
                text: "At most \(pack.visitDailyCap) visit\(pack.visitDailyCap == 1 ? "" : "s") per account per local day",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.visitWeeklyCap,
                text: "At most \(pack.visitWeeklyCap) visit\(pack.visitWeeklyCap == 1 ? "" : "s") per account within 7 days",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.agencyLicence,
                text: "The agency's licence is valid on the visit date",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.agencyStatus,
                text: "The agency is active on the lender's whitelist",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.collectorCertification,
                text: "Every collector's certification is valid on the visit date",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.collectorStatus,
                text: "No collector on the visit is suspended",
                source: defaultSourceEnglish),
            RulePack.Rule(
                id: RuleID.evidenceRequired,
                text: "A visit is closed only with its evidence (recording id and SHA-256 digest)",
                source: defaultSourceEnglish),
        ]
        return rules
    }
}
