import AccountsService
import Models
import Testing
import Validation

/// "field: problem" (INVALID_ARGUMENT at the service edge), as every validator reports.
private func invalid(_ field: String, _ problem: String) -> DomainError {
    .invalidArgument(field, problem)
}

/// A date known to be valid (test constants only).
private func day(_ year: Int, _ month: Int, _ day: Int) -> CivilDate {
    guard let date = CivilDate(year: year, month: month, day: day) else {
        fatalError("test constant \(year)-\(month)-\(day) is not a valid date")
    }
    return date
}

private func cny(_ amount: Int64) -> TypeV1.Money {
    TypeV1.Money(amountMinor: amount, currencyCode: "CNY")
}

// MARK: - PRC resident identity numbers

@Suite("PRC resident identity number (GB 11643-1999)")
struct PRCResidentIDTests {
    // The standard sample 11010519491231002X, worked by hand:
    //   digits   1  1  0  1  0  5  1  9  4  9  1  2  3  1  0  0  2
    //   weights  7  9 10  5  8  4  2  1  6  3  7  9 10  5  8  4  2
    //   products 7  9  0  5  0 20  2  9 24 27  7 18 30  5  0  0  4  → sum 167
    //   167 mod 11 = 2 (11 × 15 = 165), and "10X98765432"[2] = "X".
    @Test("check character of the standard sample")
    func standardSample() {
        #expect(PRCResidentID.checkCharacter(forFirst17: "11010519491231002") == "X")
        #expect(PRCResidentID.checkCharacter(forFirst17: "44030819900101123") == "9")   // sum 212, 212 mod 11 = 3
        #expect(PRCResidentID.checkCharacter(forFirst17: "1101051949123100") == nil)
        #expect(PRCResidentID.checkCharacter(forFirst17: "1101051949123100X") == nil)
    }

    @Test("valid numbers, normalised to an upper-case X", arguments: [
        ("11010519491231002X", "11010519491231002X"),
        ("11010519491231002x", "11010519491231002X"),
        ("440308199001011239", "440308199001011239"),
        ("310115200002294567", "310115200002294567"),   // born on the leap day 2000-02-29
    ])
    func valid(input: String, normalised: String) throws {
        #expect(try PRCResidentID.validate(input, field: "national_id") == normalised)
    }

    @Test("a wrong check character is a checksum mismatch", arguments: [
        "110105194912310021", "440308199001011230", "110105194912310029",
    ])
    func checksum(_ value: String) {
        #expect(throws: invalid("national_id", "checksum mismatch")) { try PRCResidentID.validate(value, field: "national_id") }
    }

    @Test("an impossible birth date is refused, even with a correct check character", arguments: [
        "310115200102294564",   // 2001-02-29 (not a leap year); check character 4 is right
        "110105194913310021",   // month 13; check character 1 is right
        "110105189912310015",   // born 1899, before 1900; check character 5 is right
    ])
    func birthDate(_ value: String) {
        #expect(throws: invalid("national_id", "birth date (characters 7-14) is not a valid date")) {
            try PRCResidentID.validate(value, field: "national_id")
        }
    }

    @Test("wrong shapes are refused", arguments: [
        "11010519491231002", "11010519491231002XX", "1101051949123100X2", "11010519491231002Y", "11010519491231002 ",
        "1101051949123100２X",
    ])
    func shape(_ value: String) {
        #expect(throws: invalid("national_id", "must be 18 characters: 17 digits then a digit or X")) {
            try PRCResidentID.validate(value, field: "national_id")
        }
    }

    @Test("empty is required")
    func empty() {
        #expect(throws: invalid("national_id", "required")) { try PRCResidentID.validate("", field: "national_id") }
    }
}

// MARK: - Phone numbers and masking

@Suite("Phone numbers and personal data masking")
struct PhoneAndMaskTests {
    @Test("E.164 kept, an 11-digit mainland mobile gets +86", arguments: [
        ("13812345678", "+8613812345678"),
        ("+8613812345678", "+8613812345678"),
        ("+14155550123", "+14155550123"),
        ("+12345678", "+12345678"),                    // 8 digits: the shortest accepted
        ("+123456789012345", "+123456789012345"),      // 15 digits: the E.164 maximum
    ])
    func normalised(input: String, expected: String) throws {
        #expect(try PhoneNumber.normalised(input, field: "phone") == expected)
    }

    @Test("other shapes are refused", arguments: [
        "+1234567", "+1234567890123456", "+0123456789", "23812345678", "1381234567", "138123456789",
        "138 1234 5678", "+86-138-1234-5678", "8613812345678",
    ])
    func refused(_ value: String) {
        #expect(throws: invalid("phone", "must be E.164 (e.g. +8613812345678) or an 11-digit mainland mobile number")) {
            try PhoneNumber.normalised(value, field: "phone")
        }
    }

    @Test("national ids keep the first 3 and last 4 characters", arguments: [
        ("110105194912311234", "110***********1234"),   // the example of accounts.proto
        ("11010519491231002X", "110***********002X"),
        ("12345678", "123*5678"),
        ("1234567", "*******"),
        ("", ""),
    ])
    func maskNationalID(value: String, masked: String) {
        #expect(PersonalDataMask.nationalID(value) == masked)
    }

    @Test("phones show the national number's first 3 and last 4 digits around ****", arguments: [
        ("+8613812345678", "138****5678"),   // the example of accounts.proto
        ("13812345678", "138****5678"),
        ("+14155550123", "141****0123"),
        ("+447911123456", "447****3456"),
        ("+861234567", "*******"),
    ])
    func maskPhone(value: String, masked: String) {
        #expect(PersonalDataMask.phone(value) == masked)
    }

    @Test("a masked debtor has every personal number masked and says so")
    func maskedDebtor() {
        let debtor = AccountsV1.Debtor(
            id: "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FG", externalId: "CUST-1", fullName: "张三",
            nationalId: "11010519491231002X", phone: "+8613812345678",
            emergencyContacts: [
                AccountsV1.EmergencyContact(fullName: "李四", relationship: .spouse, phone: "+8613900001111"),
                AccountsV1.EmergencyContact(fullName: "Ann", relationship: .friend, phone: "+14155550123"),
            ]
        )
        let masked = PersonalDataMask.masked(debtor)
        #expect(masked.nationalId == "110***********002X")
        #expect(masked.phone == "138****5678")
        #expect(masked.emergencyContacts.map(\.phone) == ["139****1111", "141****0123"])
        #expect(masked.emergencyContacts.map(\.fullName) == ["李四", "Ann"])
        #expect(masked.fullName == "张三")
        #expect(masked.personalDataMasked)
        #expect(PersonalDataMask.masked(masked) == masked)
    }
}

// MARK: - Debtor validation

@Suite("Debtor validation (CreateDebtor)")
struct DebtorValidationTests {
    static let valid = AccountsV1.Debtor(
        id: "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FG",
        externalId: "CUST-0001",
        fullName: "张三",
        nationalId: "11010519491231002x",
        phone: "13812345678",
        address: TypeV1.Address(
            text: "上海市浦东新区世纪大道100号\n12楼1203室",
            regionCode: "310115",
            postalCode: "200120",
            location: TypeV1.GeoPoint(latitude: 31.2304, longitude: 121.4737)
        ),
        timeZone: "Asia/Shanghai",
        emergencyContacts: [
            AccountsV1.EmergencyContact(id: "emc_01HZY3V9Q6X1M8N2B4C7D5E0FG", fullName: "李四", relationship: .spouse, phone: "+8613900001111"),
            AccountsV1.EmergencyContact(fullName: "王五", relationship: .parent, phone: "13900002222"),
            AccountsV1.EmergencyContact(fullName: "赵六", relationship: .colleague, phone: "+14155550123"),
        ],
        personalDataMasked: true,
        version: 7,
        createdMs: 1_700_000_000_000,
        updatedMs: 1_700_000_000_001
    )

    /// The error validating `valid` changed by `change` gives, or nil if it passes.
    func failure(rules: DebtorRules = .defaults, _ change: (inout AccountsV1.Debtor) -> Void) -> DomainError? {
        var debtor = Self.valid
        change(&debtor)
        do {
            _ = try DebtorValidation.validate(debtor, rules: rules)
            return nil
        } catch {
            return error
        }
    }

    @Test("a valid debtor comes back normalised with output-only fields cleared")
    func normalises() throws {
        let debtor = try DebtorValidation.validate(Self.valid, rules: .defaults)
        #expect(debtor.id == "")
        #expect(debtor.version == 0)
        #expect(debtor.createdMs == 0)
        #expect(debtor.updatedMs == 0)
        #expect(debtor.personalDataMasked == false)
        #expect(debtor.nationalId == "11010519491231002X")
        #expect(debtor.phone == "+8613812345678")
        #expect(debtor.emergencyContacts.map(\.id) == ["", "", ""])
        #expect(debtor.emergencyContacts.map(\.phone) == ["+8613900001111", "+8613900002222", "+14155550123"])
        #expect(debtor.fullName == "张三")
        #expect(debtor.address == Self.valid.address)
        #expect(debtor.timeZone == "Asia/Shanghai")
    }

    @Test("an absent debtor is required")
    func absent() {
        #expect(throws: invalid("debtor", "required")) { try DebtorValidation.validate(nil, rules: .defaults) }
    }

    @Test("each invalid field is named by its path")
    func fieldPaths() {
        #expect(failure { $0.externalId = "" } == invalid("debtor.external_id", "required"))
        #expect(failure { $0.externalId = "CUST 1" } == invalid("debtor.external_id", "must be printable ASCII without spaces"))
        #expect(failure { $0.fullName = "" } == invalid("debtor.full_name", "required"))
        #expect(failure { $0.fullName = String(repeating: "张", count: 101) } == invalid("debtor.full_name", "must be at most 100 characters"))
        #expect(failure { $0.fullName = String(repeating: "张", count: 100) } == nil)
        #expect(failure { $0.fullName = "张\u{0}三" } == invalid("debtor.full_name", "must not contain control characters"))
        #expect(failure { $0.nationalId = "110105194912310021" } == invalid("debtor.national_id", "checksum mismatch"))
        #expect(failure { $0.phone = "" } == invalid("debtor.phone", "required"))
        #expect(failure { $0.phone = "12345" }
            == invalid("debtor.phone", "must be E.164 (e.g. +8613812345678) or an 11-digit mainland mobile number"))
        #expect(failure { $0.address = nil } == invalid("debtor.address", "required"))
        #expect(failure { $0.address?.text = "" } == invalid("debtor.address.text", "required"))
        #expect(failure { $0.address?.text = String(repeating: "路", count: 501) } == invalid("debtor.address.text", "must be at most 500 characters"))
        #expect(failure { $0.address?.regionCode = "" } == invalid("debtor.address.region_code", "required"))
        #expect(failure { $0.address?.postalCode = String(repeating: "1", count: 17) } == invalid("debtor.address.postal_code", "must be at most 16 characters"))
        #expect(failure { $0.address?.postalCode = "" } == nil)
        #expect(failure { $0.address?.location = nil } == nil)
        #expect(failure { $0.address?.location?.latitude = 91 } == invalid("debtor.address.location.latitude", "must be between -90 and 90"))
        #expect(failure { $0.timeZone = "" } == invalid("debtor.time_zone", "required"))
        #expect(failure { $0.timeZone = "CST" } == invalid("debtor.time_zone", "unknown IANA zone"))
    }

    @Test("emergency contacts: at most 5, each with a name, a relationship and a phone")
    func emergencyContacts() {
        let contact = AccountsV1.EmergencyContact(fullName: "李四", relationship: .sibling, phone: "13900003333")
        #expect(failure { $0.emergencyContacts = [] } == nil)
        #expect(failure { $0.emergencyContacts = Array(repeating: contact, count: 5) } == nil)
        #expect(failure { $0.emergencyContacts = Array(repeating: contact, count: 6) }
            == invalid("debtor.emergency_contacts", "at most 5 entries"))
        #expect(failure { $0.emergencyContacts[2].phone = "" } == invalid("debtor.emergency_contacts[2].phone", "required"))
        #expect(failure { $0.emergencyContacts[1].fullName = "" } == invalid("debtor.emergency_contacts[1].full_name", "required"))
        #expect(failure { $0.emergencyContacts[0].relationship = .unspecified }
            == invalid("debtor.emergency_contacts[0].relationship", "required"))
        #expect(failure { $0.emergencyContacts[0].relationship = .unrecognized(42) }
            == invalid("debtor.emergency_contacts[0].relationship", "unknown value 42"))
    }

    @Test("fields are checked in proto order: the first invalid one is reported")
    func firstErrorWins() {
        #expect(failure {
            $0.phone = "bad"
            $0.externalId = ""
            $0.timeZone = "CST"
        } == invalid("debtor.external_id", "required"))
        #expect(failure {
            $0.emergencyContacts[2].phone = ""
            $0.emergencyContacts[1].relationship = .unspecified
        } == invalid("debtor.emergency_contacts[1].relationship", "required"))
    }

    @Test("outside the cn-* packs a national id is 1-32 of [0-9A-Za-z]")
    func nonPRCNationalID() {
        let other = DebtorRules(requirePRCNationalID: false)
        #expect(failure(rules: other) { $0.nationalId = "AB1234567" } == nil)
        #expect(failure(rules: other) { $0.nationalId = String(repeating: "A", count: 32) } == nil)
        #expect(failure(rules: other) { $0.nationalId = String(repeating: "A", count: 33) }
            == invalid("debtor.national_id", "must be 1-32 characters of [0-9A-Za-z]"))
        #expect(failure(rules: other) { $0.nationalId = "AB-1234" } == invalid("debtor.national_id", "must be 1-32 characters of [0-9A-Za-z]"))
        #expect(failure(rules: other) { $0.nationalId = "" } == invalid("debtor.national_id", "required"))
        #expect(failure { $0.nationalId = "AB1234567" }
            == invalid("debtor.national_id", "must be 18 characters: 17 digits then a digit or X"))
        #expect(DebtorRules.defaults.requirePRCNationalID)
    }
}

// MARK: - Delinquency

@Suite("Delinquency: balances, days past due, buckets")
struct DelinquencyTests {
    static let firstDue = day(2026, 1, 15)

    func instalment(
        due: CivilDate, amount: Int64 = 1000, paid: Int64 = 0, status: AccountsV1.InstalmentStatus = .unpaid
    ) -> AccountsV1.Instalment {
        AccountsV1.Instalment(dueDate: due.proto, amountDue: cny(amount), amountPaid: cny(paid), status: status)
    }

    @Test("nothing due yet: outstanding but not overdue")
    func nothingDueYet() {
        let schedule = [instalment(due: Self.firstDue.adding(days: 10)), instalment(due: Self.firstDue.adding(days: 40))]
        let result = Delinquency.compute(instalments: schedule, asOf: Self.firstDue, policy: .defaults)
        #expect(result == Delinquency(
            outstandingMinor: 2000, overdueMinor: 0, daysPastDue: 0, bucket: .current,
            oldestUnpaidDueDate: Self.firstDue.adding(days: 10)
        ))
    }

    @Test("due today is not yet overdue; the day after it is 1 day past due")
    func dueToday() {
        let schedule = [instalment(due: Self.firstDue)]
        let today = Delinquency.compute(instalments: schedule, asOf: Self.firstDue, policy: .defaults)
        #expect(today.overdueMinor == 0)
        #expect(today.daysPastDue == 0)
        #expect(today.bucket == .current)
        #expect(today.oldestUnpaidDueDate == Self.firstDue)
        let tomorrow = Delinquency.compute(instalments: schedule, asOf: Self.firstDue.adding(days: 1), policy: .defaults)
        #expect(tomorrow.overdueMinor == 1000)
        #expect(tomorrow.daysPastDue == 1)
        #expect(tomorrow.bucket == .m1)
    }

    @Test("bucket boundaries: M1 1-30, M2 31-60, M3 61-90, M4+ 91 and more", arguments: [
        (0, AccountsV1.Bucket.current), (1, AccountsV1.Bucket.m1), (30, AccountsV1.Bucket.m1),
        (31, AccountsV1.Bucket.m2), (60, AccountsV1.Bucket.m2), (61, AccountsV1.Bucket.m3),
        (90, AccountsV1.Bucket.m3), (91, AccountsV1.Bucket.m4Plus), (400, AccountsV1.Bucket.m4Plus),
    ])
    func buckets(daysPastDue: Int, bucket: AccountsV1.Bucket) {
        let result = Delinquency.compute(
            instalments: [instalment(due: Self.firstDue)], asOf: Self.firstDue.adding(days: daysPastDue), policy: .defaults
        )
        #expect(result.daysPastDue == daysPastDue)
        #expect(result.bucket == bucket)
        #expect(DelinquencyPolicy.defaults.bucket(daysPastDue: daysPastDue) == bucket)
    }

    @Test("partial payments leave the rest unpaid and keep the oldest due date")
    func partialPayments() {
        let schedule = [
            instalment(due: Self.firstDue, paid: 400, status: .partiallyPaid),
            instalment(due: Self.firstDue.adding(days: 30)),
            instalment(due: Self.firstDue.adding(days: 60)),
        ]
        let result = Delinquency.compute(instalments: schedule, asOf: Self.firstDue.adding(days: 45), policy: .defaults)
        #expect(result == Delinquency(
            outstandingMinor: 600 + 1000 + 1000, overdueMinor: 600 + 1000, daysPastDue: 45, bucket: .m2,
            oldestUnpaidDueDate: Self.firstDue
        ))
    }

    @Test("paid and waived instalments are skipped")
    func paidAndWaivedSkipped() {
        let schedule = [
            instalment(due: Self.firstDue, paid: 1000, status: .paid),
            instalment(due: Self.firstDue.adding(days: 10), status: .waived),
            instalment(due: Self.firstDue.adding(days: 30)),
        ]
        let result = Delinquency.compute(instalments: schedule, asOf: Self.firstDue.adding(days: 45), policy: .defaults)
        #expect(result == Delinquency(
            outstandingMinor: 1000, overdueMinor: 1000, daysPastDue: 15, bucket: .m1,
            oldestUnpaidDueDate: Self.firstDue.adding(days: 30)
        ))
    }

    @Test("everything paid, or no schedule: nothing owed")
    func nothingOwed() {
        let paid = [instalment(due: Self.firstDue, paid: 1000, status: .paid)]
        let empty = Delinquency(outstandingMinor: 0, overdueMinor: 0, daysPastDue: 0, bucket: .current, oldestUnpaidDueDate: nil)
        #expect(Delinquency.compute(instalments: paid, asOf: Self.firstDue.adding(days: 100), policy: .defaults) == empty)
        #expect(Delinquency.compute(instalments: [], asOf: Self.firstDue, policy: .defaults) == empty)
    }

    @Test("the oldest unpaid due date does not depend on the schedule's order")
    func unsorted() {
        let schedule = [instalment(due: Self.firstDue.adding(days: 30)), instalment(due: Self.firstDue)]
        let result = Delinquency.compute(instalments: schedule, asOf: Self.firstDue.adding(days: 31), policy: .defaults)
        #expect(result.daysPastDue == 31)
        #expect(result.overdueMinor == 2000)
        #expect(result.oldestUnpaidDueDate == Self.firstDue)
    }

    @Test("bucket bounds come from the policy")
    func customPolicy() {
        let policy = DelinquencyPolicy(m1MaxDPD: 10, m2MaxDPD: 20, m3MaxDPD: 30)
        #expect(policy.bucket(daysPastDue: 10) == .m1)
        #expect(policy.bucket(daysPastDue: 11) == .m2)
        #expect(policy.bucket(daysPastDue: 21) == .m3)
        #expect(policy.bucket(daysPastDue: 31) == .m4Plus)
    }

    @Test("opening stage thresholds: CURRENT, REMINDER from 1, REMOTE from 8, never FIELD", arguments: [
        (0, AccountsV1.Stage.current, "opened with nothing past due"),
        (1, AccountsV1.Stage.reminder, "opened with 1 day past due (reminders from 1)"),
        (7, AccountsV1.Stage.reminder, "opened with 7 days past due (reminders from 1)"),
        (8, AccountsV1.Stage.remote, "opened with 8 days past due (remote collection from 8)"),
        (12, AccountsV1.Stage.remote, "opened with 12 days past due (remote collection from 8)"),
        (31, AccountsV1.Stage.remote, "opened with 31 days past due (remote collection from 8)"),
        (500, AccountsV1.Stage.remote, "opened with 500 days past due (remote collection from 8)"),
    ])
    func openingStage(daysPastDue: Int, stage: AccountsV1.Stage, reason: String) {
        #expect(Delinquency.openingStage(daysPastDue: daysPastDue, policy: .defaults) == StageDecision(stage: stage, reason: reason))
    }

    @Test("opening stage under a policy whose reminders start later")
    func openingStageCustomPolicy() {
        let policy = DelinquencyPolicy(reminderFromDPD: 3, remoteFromDPD: 15)
        #expect(Delinquency.openingStage(daysPastDue: 2, policy: policy)
            == StageDecision(stage: .current, reason: "opened with 2 days past due (reminders from 3)"))
        #expect(Delinquency.openingStage(daysPastDue: 14, policy: policy).stage == .reminder)
        #expect(Delinquency.openingStage(daysPastDue: 15, policy: policy)
            == StageDecision(stage: .remote, reason: "opened with 15 days past due (remote collection from 15)"))
    }
}

// MARK: - Account opening

@Suite("Account opening (OpenAccount)")
struct AccountOpeningTests {
    static let asOf = day(2026, 3, 10)

    static let valid = AccountsV1.OpenAccountRequest(
        requestId: "req-0001",
        debtorId: "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FG",
        externalId: "LOAN-2025-0001",
        lenderId: "huabei",
        product: .instalmentLoan,
        productName: "花呗分期",
        principal: cny(300_000),
        openedDate: TypeV1.Date(year: 2025, month: 12, day: 1),
        instalments: [
            AccountsV1.OpeningInstalment(
                dueDate: TypeV1.Date(year: 2026, month: 1, day: 1), amountDue: cny(105_000), amountPaid: cny(105_000),
                paidDate: TypeV1.Date(year: 2025, month: 12, day: 30)
            ),
            AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 2, day: 1), amountDue: cny(105_000), amountPaid: cny(50_000)),
            AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 3, day: 1), amountDue: cny(105_000)),
        ],
        assignedAgencyId: "agy_01HZY3V9Q6X1M8N2B4C7D5E0FG"
    )

    /// The error validating `valid` changed by `change` gives, or nil if it passes.
    func failure(_ change: (inout AccountsV1.OpenAccountRequest) -> Void) -> DomainError? {
        var request = Self.valid
        change(&request)
        do {
            _ = try AccountOpening.validate(request, asOf: Self.asOf)
            return nil
        } catch {
            return error
        }
    }

    /// `count` instalments of 1000 fen, one a day from the opening date.
    static func dailyInstalments(_ count: Int) -> [AccountsV1.OpeningInstalment] {
        (0..<count).map { index in
            AccountsV1.OpeningInstalment(dueDate: day(2025, 12, 1).adding(days: index).proto, amountDue: cny(1000))
        }
    }

    @Test("a valid request gives the stored schedule")
    func validRequest() throws {
        let opening = try AccountOpening.validate(Self.valid, asOf: Self.asOf)
        #expect(opening.requestID == "req-0001")
        #expect(opening.debtorID == "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FG")
        #expect(opening.externalID == "LOAN-2025-0001")
        #expect(opening.lenderID == "huabei")
        #expect(opening.product == .instalmentLoan)
        #expect(opening.productName == "花呗分期")
        #expect(opening.principalMinor == 300_000)
        #expect(opening.currency == "CNY")
        #expect(opening.openedDate == day(2025, 12, 1))
        #expect(opening.assignedAgencyID == "agy_01HZY3V9Q6X1M8N2B4C7D5E0FG")
        #expect(opening.instalments == [
            AccountsV1.Instalment(
                sequence: 1, dueDate: TypeV1.Date(year: 2026, month: 1, day: 1), amountDue: cny(105_000),
                amountPaid: cny(105_000), status: .paid, paidDate: TypeV1.Date(year: 2025, month: 12, day: 30)
            ),
            AccountsV1.Instalment(
                sequence: 2, dueDate: TypeV1.Date(year: 2026, month: 2, day: 1), amountDue: cny(105_000),
                amountPaid: cny(50_000), status: .partiallyPaid
            ),
            AccountsV1.Instalment(
                sequence: 3, dueDate: TypeV1.Date(year: 2026, month: 3, day: 1), amountDue: cny(105_000),
                amountPaid: cny(0), status: .unpaid
            ),
        ])
    }

    @Test("the opened schedule's delinquency and opening stage")
    func openedDelinquency() throws {
        let opening = try AccountOpening.validate(Self.valid, asOf: Self.asOf)
        let delinquency = Delinquency.compute(instalments: opening.instalments, asOf: Self.asOf, policy: .defaults)
        // Unpaid: 55000 of the 2026-02-01 instalment and all of the 2026-03-01 one, both before 2026-03-10.
        #expect(delinquency == Delinquency(
            outstandingMinor: 160_000, overdueMinor: 160_000, daysPastDue: 37, bucket: .m2,
            oldestUnpaidDueDate: day(2026, 2, 1)
        ))
        #expect(Delinquency.openingStage(daysPastDue: delinquency.daysPastDue, policy: .defaults)
            == StageDecision(stage: .remote, reason: "opened with 37 days past due (remote collection from 8)"))
    }

    @Test("request fields are named by their paths")
    func requestFields() {
        #expect(failure { $0.requestId = "" } == invalid("request_id", "required"))
        #expect(failure { $0.debtorId = "" } == invalid("debtor_id", "required"))
        #expect(failure { $0.debtorId = "dbt_123" } == invalid("debtor_id", "not a valid dbt_ id"))
        #expect(failure { $0.debtorId = "acc_01HZY3V9Q6X1M8N2B4C7D5E0FG" } == invalid("debtor_id", "not a valid dbt_ id"))
        #expect(failure { $0.externalId = "" } == invalid("external_id", "required"))
        #expect(failure { $0.lenderId = "" } == invalid("lender_id", "required"))
        #expect(failure { $0.lenderId = "Huabei" } == invalid("lender_id", "must contain only [a-z0-9_-]"))
        #expect(failure { $0.lenderId = String(repeating: "a", count: 64) } == nil)
        #expect(failure { $0.lenderId = String(repeating: "a", count: 65) } == invalid("lender_id", "must be at most 64 characters"))
        #expect(failure { $0.product = .unspecified } == invalid("product", "required"))
        #expect(failure { $0.product = .unrecognized(9) } == invalid("product", "unknown value 9"))
        #expect(failure { $0.productName = "" } == nil)
        #expect(failure { $0.productName = String(repeating: "花", count: 101) } == invalid("product_name", "must be at most 100 characters"))
        #expect(failure { $0.principal = nil } == invalid("principal", "required"))
        #expect(failure { $0.principal = cny(0) } == invalid("principal.amount_minor", "must be greater than 0"))
        #expect(failure { $0.principal?.currencyCode = "cny" } == invalid("principal.currency_code", "must be three upper-case letters (ISO 4217)"))
        #expect(failure { $0.openedDate = nil } == invalid("opened_date", "required"))
        #expect(failure { $0.openedDate = TypeV1.Date(year: 2026, month: 3, day: 11) } == invalid("opened_date", "must not be after today (2026-03-10)"))
        #expect(failure {
            $0.openedDate = TypeV1.Date(year: 2026, month: 1, day: 1)
            $0.instalments[0].paidDate = TypeV1.Date(year: 2026, month: 1, day: 1)
        } == nil)
        #expect(failure { $0.assignedAgencyId = "" } == nil)
        #expect(failure { $0.assignedAgencyId = "agency-7" } == invalid("assigned_agency_id", "not a valid agy_ id"))
    }

    @Test("opening today is allowed; an unassigned account has no agency")
    func boundaries() throws {
        var request = Self.valid
        request.openedDate = Self.asOf.proto
        request.instalments = [AccountsV1.OpeningInstalment(dueDate: Self.asOf.proto, amountDue: cny(300_000))]
        request.assignedAgencyId = ""
        let opening = try AccountOpening.validate(request, asOf: Self.asOf)
        #expect(opening.assignedAgencyID == nil)
        #expect(opening.instalments.map(\.status) == [.unpaid])
    }

    @Test("instalment count: 1 to 360")
    func instalmentCount() {
        #expect(failure { $0.instalments = [] } == invalid("instalments", "required"))
        #expect(failure {
            $0.principal = cny(1000)
            $0.instalments = Self.dailyInstalments(360)
        } == nil)
        #expect(failure {
            $0.principal = cny(1000)
            $0.instalments = Self.dailyInstalments(361)
        } == invalid("instalments", "at most 360 entries"))
    }

    @Test("due dates: valid, strictly increasing, not before the opening date")
    func dueDates() {
        #expect(failure { $0.instalments[1].dueDate = TypeV1.Date(year: 2026, month: 2, day: 30) }
            == invalid("instalments[1].due_date", "not a valid date: 2026-02-30"))
        #expect(failure { $0.instalments[2].dueDate = nil } == invalid("instalments[2].due_date", "required"))
        #expect(failure { $0.instalments[0].dueDate = TypeV1.Date(year: 2025, month: 11, day: 30) }
            == invalid("instalments[0].due_date", "must not be before opened_date"))
        #expect(failure {
            $0.instalments.append(AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 3, day: 1), amountDue: cny(1000)))
        } == invalid("instalments[3].due_date", "must be after instalments[2].due_date"))
        #expect(failure { $0.instalments[2].dueDate = TypeV1.Date(year: 2026, month: 1, day: 15) }
            == invalid("instalments[2].due_date", "must be after instalments[1].due_date"))
    }

    @Test("amounts: due > 0 in the account's currency, paid at most due")
    func amounts() {
        #expect(failure { $0.instalments[0].amountDue = nil } == invalid("instalments[0].amount_due", "required"))
        #expect(failure { $0.instalments[0].amountDue = cny(0) } == invalid("instalments[0].amount_due.amount_minor", "must be greater than 0"))
        #expect(failure { $0.instalments[2].amountDue?.currencyCode = "USD" }
            == invalid("instalments[2].amount_due.currency_code", "must be CNY, the account's currency"))
        #expect(failure { $0.instalments[1].amountPaid = cny(105_001) } == invalid("instalments[1].amount_paid", "must not exceed amount_due"))
        #expect(failure { $0.instalments[1].amountPaid?.currencyCode = "USD" }
            == invalid("instalments[1].amount_paid.currency_code", "must be CNY, the account's currency"))
        #expect(failure { $0.instalments[1].amountPaid = cny(-1) } == invalid("instalments[1].amount_paid.amount_minor", "must not be negative"))
        #expect(failure { $0.instalments[1].amountPaid = cny(0) } == nil)
    }

    @Test("paid date: required exactly when fully paid, not after today")
    func paidDates() {
        #expect(failure { $0.instalments[0].paidDate = nil }
            == invalid("instalments[0].paid_date", "required when amount_paid equals amount_due"))
        #expect(failure { $0.instalments[1].paidDate = TypeV1.Date(year: 2026, month: 2, day: 1) }
            == invalid("instalments[1].paid_date", "must be unset unless amount_paid equals amount_due"))
        #expect(failure { $0.instalments[0].paidDate = TypeV1.Date(year: 2026, month: 3, day: 11) }
            == invalid("instalments[0].paid_date", "must not be after today (2026-03-10)"))
        #expect(failure { $0.instalments[0].paidDate = TypeV1.Date(year: 2026, month: 3, day: 10) } == nil)
        #expect(failure { $0.instalments[0].paidDate = TypeV1.Date(year: 2026, month: 2, day: 29) }
            == invalid("instalments[0].paid_date", "not a valid date: 2026-02-29"))
    }

    @Test("the amounts due must cover the principal and add up without overflow")
    func totals() {
        #expect(failure { $0.principal = cny(315_000) } == nil)
        #expect(failure { $0.principal = cny(315_001) }
            == invalid("instalments", "amounts due sum to 315000, less than the principal 315001 (CNY minor units)"))
        #expect(failure {
            $0.instalments = [
                AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 1, day: 1), amountDue: cny(.max)),
                AccountsV1.OpeningInstalment(dueDate: TypeV1.Date(year: 2026, month: 2, day: 1), amountDue: cny(1)),
            ]
        } == invalid("instalments[1].amount_due", "the amounts due are too large to add up"))
    }

    @Test("fields are checked in proto order: the first invalid one is reported")
    func firstErrorWins() {
        #expect(failure {
            $0.assignedAgencyId = "bad"
            $0.product = .unspecified
            $0.requestId = ""
        } == invalid("request_id", "required"))
        #expect(failure {
            $0.instalments[2].amountDue = nil
            $0.instalments[1].dueDate = nil
        } == invalid("instalments[1].due_date", "required"))
    }
}
