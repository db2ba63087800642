// Tests that import StreamTesting get the StreamCore vocabulary (ManualClock, states, operators) too.
@_exported import StreamCore
