/// A growable array of optional values indexed by key slot, without copy-on-write or reference
/// counting on access: owned by exactly one state object, which frees it in `deinit`.
@usableFromInline
struct SlotColumn<Element> {
    @usableFromInline var base: UnsafeMutablePointer<Element?>
    @usableFromInline var capacity: Int

    @usableFromInline
    init() {
        capacity = 16
        base = .allocate(capacity: capacity)
        base.initialize(repeating: nil, count: capacity)
    }

    /// Frees the storage; call once from the owner's `deinit`.
    @usableFromInline
    func release() {
        base.deinitialize(count: capacity)
        base.deallocate()
    }

    @inlinable
    subscript(slot: Int) -> Element? {
        get { slot < capacity ? base[slot] : nil }
        nonmutating _modify { yield &base[slot] }
    }

    /// Makes `slot` addressable.
    @inlinable
    mutating func ensure(_ slot: Int) {
        if slot >= capacity { grow(slot) }
    }

    @usableFromInline
    mutating func grow(_ slot: Int) {
        var newCapacity = capacity * 2
        while newCapacity <= slot { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<Element?>.allocate(capacity: newCapacity)
        newBase.moveInitialize(from: base, count: capacity)
        (newBase + capacity).initialize(repeating: nil, count: newCapacity - capacity)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @usableFromInline var indices: Range<Int> { 0..<capacity }
}
