import Models

/// A typical account as GetAccount returns it (FULL view): a 12-month instalment loan half
/// repaid, three payments with their allocations, a promise to pay, a four-factor risk
/// assessment and today's contact counters. About 1.3 KB on the wire.
enum TypicalAccount {
    static func yuan(_ fen: Int64) -> TypeV1.Money { .init(amountMinor: fen, currencyCode: "CNY") }

    static func make() -> AccountsV1.Account {
        let instalments = (1...12).map { (month: Int) -> AccountsV1.Instalment in
            AccountsV1.Instalment(
                sequence: Int32(month),
                dueDate: .init(year: 2026, month: Int32(month), day: 15),
                amountDue: yuan(104_166),
                amountPaid: yuan(month <= 6 ? 104_166 : 0),
                status: month <= 6 ? .paid : .unpaid,
                paidDate: month <= 6 ? .init(year: 2026, month: Int32(month), day: 14) : nil
            )
        }
        let payments = (1...3).map { (index: Int) -> AccountsV1.Payment in
            AccountsV1.Payment(
                id: "pay_01HZY3V9Q6X1M8N2B4C7D5E0F\(index)",
                requestId: "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6\(index)",
                amount: yuan(208_332),
                receivedMs: Int64(1_767_000_000_000 + index * 86_400_000),
                externalId: "alipay-txn-2026-000\(index)",
                allocations: [
                    AccountsV1.PaymentAllocation(instalmentSequence: Int32(index * 2 - 1), amount: yuan(104_166)),
                    AccountsV1.PaymentAllocation(instalmentSequence: Int32(index * 2), amount: yuan(104_166)),
                ],
                note: "支付宝自动扣款",
                recordedMs: Int64(1_767_000_000_500 + index * 86_400_000)
            )
        }
        return AccountsV1.Account(
            id: "acc_01HZY3V9Q6X1M8N2B4C7D5E0FG",
            debtorId: "dbt_01HZY3V9Q6X1M8N2B4C7D5E0FH",
            externalId: "HB-2025-00042424",
            lenderId: "huabei",
            product: .instalmentLoan,
            productName: "花呗分期",
            principal: yuan(1_250_000),
            openedDate: .init(year: 2025, month: 12, day: 15),
            instalments: instalments,
            outstandingAmount: yuan(625_000),
            overdueAmount: yuan(312_500),
            daysPastDue: 69,
            bucket: .m3,
            oldestUnpaidDueDate: .init(year: 2026, month: 7, day: 15),
            asOfDate: .init(year: 2026, month: 9, day: 22),
            stage: .field,
            stageEnteredMs: 1_790_000_000_000,
            stageReason: "3 unsuccessful remote contacts at 61 days past due",
            risk: .init(
                score: 412, tier: .d,
                factors: [
                    .init(code: .daysPastDue, inputValue: 69, points: -180, explanation: "69 days past due"),
                    .init(code: .overdueRatio, inputValue: 5000, points: -120, explanation: "half of the balance is overdue"),
                    .init(code: .onTimeHistory, inputValue: 6, points: 90, explanation: "6 of 9 instalments paid on time"),
                    .init(code: .brokenPromises, inputValue: 1, points: -60, explanation: "1 broken promise"),
                ],
                paymentProbability30dBp: 3100,
                expectedRecovery: yuan(96_875),
                scorecardVersion: "cn-2026.1",
                assessedMs: 1_790_000_100_000
            ),
            payments: payments,
            promises: [
                .init(id: "ptp_01HZY3V9Q6X1M8N2B4C7D5E0FJ", requestId: "5c0f3c1e-6b8a-4f7e-9a51-0d3c2b1a4e5f",
                      amount: yuan(104_166), promisedDate: .init(year: 2026, month: 8, day: 1),
                      sourceContactAttemptId: "cta_01HZY3V9Q6X1M8N2B4C7D5E0FK", status: .broken,
                      createdMs: 1_785_000_000_000, resolvedMs: 1_785_700_000_000, note: "承诺月初还款")
            ],
            contactSummary: .init(
                countsDate: .init(year: 2026, month: 9, day: 22), connectedCallsToday: 1, callAttemptsToday: 2,
                smsToday: 1, callAttemptsLast7Days: 5, lastConversationMs: 1_790_000_000_000,
                consecutiveFailedAttempts: 3, unsuccessfulRemoteContacts: 4, totalAttempts: 11
            ),
            assignedAgencyId: "agy_01HZY3V9Q6X1M8N2B4C7D5E0FM",
            regionCode: "310104",
            debtorTimeZone: "Asia/Shanghai",
            version: 17,
            createdMs: 1_765_000_000_000,
            updatedMs: 1_790_000_100_000
        )
    }
}
