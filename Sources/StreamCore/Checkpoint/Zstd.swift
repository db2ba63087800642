internal import CZstd

/// A zstd failure, with zstd's own error name.
public struct ZstdError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }

    static func zstd(_ what: String, _ code: Int) -> ZstdError {
        ZstdError("zstd \(what) failed: \(String(cString: ZSTD_getErrorName(code)))")
    }
}

/// zstd compression of snapshot files (libzstd through the CZstd system library).
public enum Zstd {
    /// zstd's default level (3): fast, and snapshots of repetitive state shrink well at it.
    public static let defaultLevel: Int32 = 3
    /// Decompressed sizes above this are refused unless the caller says otherwise (garbled headers
    /// must not make us allocate terabytes).
    public static let defaultMaxDecompressedSize = 1 << 34

    /// One zstd frame holding `input`, with the content size in its header and zstd's own
    /// content checksum.
    public static func compress(_ input: [UInt8], level: Int32 = defaultLevel) throws -> [UInt8] {
        try input.withUnsafeBytes { try compress($0, level: level) }
    }

    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = defaultLevel) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw ZstdError("zstd: cannot allocate a compression context") }
        defer { ZSTD_freeCCtx(cctx) }
        try check("set level", ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level))
        try check("enable checksum", ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1))
        let bound = ZSTD_compressBound(input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let n = output.withUnsafeMutableBytes { out in
            ZSTD_compress2(cctx, out.baseAddress, out.count, input.baseAddress, input.count)
        }
        try check("compress", n)
        output.removeSubrange(n...)
        return output
    }

    /// The content of one or more zstd frames. Frames that declare their size are decompressed in
    /// one call; others (e.g. from the `zstd` command reading a pipe) are streamed.
    /// - Parameter expectedSize: when known (e.g. from a manifest), a different size is an error.
    public static func decompress(_ input: [UInt8], expectedSize: Int? = nil,
                                  maxSize: Int = defaultMaxDecompressedSize) throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, expectedSize: expectedSize, maxSize: maxSize) }
    }

    public static func decompress(_ input: UnsafeRawBufferPointer, expectedSize: Int? = nil,
                                  maxSize: Int = defaultMaxDecompressedSize) throws -> [UInt8] {
        let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if declared == ZSTD_CONTENTSIZE_ERROR { throw ZstdError("zstd: not a zstd frame (bad magic or truncated header)") }
        let output: [UInt8]
        // One-shot only when the first frame is the whole input and declares its size.
        if declared != ZSTD_CONTENTSIZE_UNKNOWN,
           ZSTD_findFrameCompressedSize(input.baseAddress, input.count) == input.count {
            guard declared <= UInt64(maxSize) else {
                throw ZstdError("zstd: frame declares \(declared) bytes, more than the \(maxSize) allowed")
            }
            if let expectedSize, UInt64(expectedSize) != declared {
                throw ZstdError("zstd: frame declares \(declared) bytes, expected \(expectedSize)")
            }
            var out = [UInt8](repeating: 0, count: Int(declared))
            let n = out.withUnsafeMutableBytes { d in
                ZSTD_decompress(d.baseAddress, d.count, input.baseAddress, input.count)
            }
            try check("decompress", n)
            guard n == out.count else { throw ZstdError("zstd: frame decompressed to \(n) bytes, its header says \(declared)") }
            output = out
        } else {
            output = try streamDecompress(input, maxSize: maxSize)
        }
        if let expectedSize, output.count != expectedSize {
            throw ZstdError("zstd: decompressed to \(output.count) bytes, expected \(expectedSize)")
        }
        return output
    }

    static func streamDecompress(_ input: UnsafeRawBufferPointer, maxSize: Int) throws -> [UInt8] {
        guard let dctx = ZSTD_createDCtx() else { throw ZstdError("zstd: cannot allocate a decompression context") }
        defer { ZSTD_freeDCtx(dctx) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var lastReturn = 0
        while true {
            let (ret, produced) = chunk.withUnsafeMutableBytes { out -> (Int, Int) in
                var outBuf = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let r = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
                return (r, outBuf.pos)
            }
            try check("decompress", ret)
            result.append(contentsOf: chunk[0..<produced])
            guard result.count <= maxSize else { throw ZstdError("zstd: content exceeds the \(maxSize) bytes allowed") }
            lastReturn = ret
            // Done when all input is consumed and the decoder has flushed everything it holds.
            if inBuf.pos == inBuf.size && produced < chunk.count { break }
        }
        // A non-zero hint means a frame was cut short.
        guard lastReturn == 0 else { throw ZstdError("zstd: input ends in the middle of a frame (truncated)") }
        return result
    }

    @inline(__always) static func check(_ what: String, _ code: Int) throws {
        if ZSTD_isError(code) != 0 { throw ZstdError.zstd(what, code) }
    }
}
