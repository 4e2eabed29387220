/// The numbers of the collection rules beyond days past due (docs/DOMAIN.md ("Domain rules");
/// accounts.proto `RecordPromiseToPay`, `ProposeRepaymentPlan`, `ReferToLegal`, `WriteOff`,
/// `Stage.STAGE_FIELD`). Every number is configuration; the defaults are spelled out on each
/// property.
public struct CollectionPolicy: Sendable, Hashable {
    /// Unsuccessful remote contacts (every remote outcome except CONNECTED_DEBTOR_COMMITTED)
    /// that must be recorded in REMOTE before an account may enter FIELD. Default 3.
    public var fieldMinUnsuccessfulRemoteContacts: Int
    /// How far ahead a promise to pay may be dated: `promised_date` from today to today +
    /// this many days (`promise-horizon`). Default 30.
    public var promiseHorizonDays: Int
    /// Most instalments a repayment plan may have (`plan-max-instalments`). Default 24.
    public var planMaxInstalments: Int
    /// Largest plan reduction, in basis points of the overdue amount at proposal
    /// (`plan-reduction-limit`). Default 2000 (20 %).
    public var planMaxReductionBp: Int
    /// Latest last due date of a plan: today + this many calendar months, the day clamped to
    /// the month's end (`plan-horizon`). Default 24.
    public var planHorizonMonths: Int
    /// Least days past due for ReferToLegal (`legal-referral-dpd`). Default 90.
    public var legalReferralMinDPD: Int
    /// Least days past due for WriteOff unless the account is in LEGAL (`write-off-dpd`).
    /// Default 180.
    public var writeOffMinDPD: Int

    public init(
        fieldMinUnsuccessfulRemoteContacts: Int = 3,
        promiseHorizonDays: Int = 30,
        planMaxInstalments: Int = 24,
        planMaxReductionBp: Int = 2000,
        planHorizonMonths: Int = 24,
        legalReferralMinDPD: Int = 90,
        writeOffMinDPD: Int = 180
    ) {
        self.fieldMinUnsuccessfulRemoteContacts = fieldMinUnsuccessfulRemoteContacts
        self.promiseHorizonDays = promiseHorizonDays
        self.planMaxInstalments = planMaxInstalments
        self.planMaxReductionBp = planMaxReductionBp
        self.planHorizonMonths = planHorizonMonths
        self.legalReferralMinDPD = legalReferralMinDPD
        self.writeOffMinDPD = writeOffMinDPD
    }

    /// Field visits after 3 unsuccessful remote contacts; promises up to 30 days ahead;
    /// plans of at most 24 instalments over at most 24 months with a reduction of at most
    /// 20 %; legal referral from 90 days past due; write-off from 180.
    public static var defaults: CollectionPolicy { CollectionPolicy() }
}
