import Foundation
@testable import ServiceKit
import TestSupport
import Testing

/// What the reload service notices as a changed certificate or key file.
@Suite("Reload: changed files")
struct FileFingerprintTests {
    @Test("a rename over the file, a rewrite in place and a Kubernetes-style swap of the ..data link are changes; nothing else is")
    func changes() throws {
        let directory = try makeTemporaryDirectory().path
        let manager = FileManager.default
        // A Kubernetes secret volume: cert.pem -> ..data/cert.pem, ..data -> a timestamped directory.
        for version in ["v1", "v2"] {
            try manager.createDirectory(atPath: "\(directory)/\(version)", withIntermediateDirectories: true)
            try "certificate \(version)\n".write(toFile: "\(directory)/\(version)/cert.pem", atomically: true, encoding: .utf8)
        }
        try manager.createSymbolicLink(atPath: "\(directory)/..data", withDestinationPath: "v1")
        try manager.createSymbolicLink(atPath: "\(directory)/cert.pem", withDestinationPath: "..data/cert.pem")
        let path = "\(directory)/cert.pem"

        let first = FileFingerprint.of([path])
        #expect(first.entries[0] != nil)
        #expect(FileFingerprint.of([path]) == first, "nothing changed")

        // The kubelet's swap: a new link renamed over ..data; cert.pem itself is untouched.
        try manager.createSymbolicLink(atPath: "\(directory)/..data_tmp", withDestinationPath: "v2")
        #expect(rename("\(directory)/..data_tmp", "\(directory)/..data") == 0)
        let swapped = FileFingerprint.of([path])
        #expect(swapped != first, "the ..data swap was not noticed")

        // A plain file replaced by a rename, then rewritten in place.
        let plain = "\(directory)/key.pem"
        try "key 1\n".write(toFile: plain, atomically: false, encoding: .utf8)
        let before = FileFingerprint.of([plain])
        try "key 2 (longer)\n".write(toFile: plain + ".new", atomically: false, encoding: .utf8)
        #expect(rename(plain + ".new", plain) == 0)
        let renamed = FileFingerprint.of([plain])
        #expect(renamed != before)
        let handle = try #require(FileHandle(forWritingAtPath: plain))
        try handle.write(contentsOf: Data("key 3 (longer still)\n".utf8))
        try handle.close()
        #expect(FileFingerprint.of([plain]) != renamed)

        // A missing file is a state of its own (and becomes a change when it appears).
        let missing = FileFingerprint.of(["\(directory)/absent.pem"])
        #expect(missing.entries == [nil])
    }
}
