import SpaceWire
import Synchronization

/// One invocation of a callback, as the caller sees it.
public struct CallbackInvocation: Sendable, Hashable {
    /// Which `cb:` argument of the call it belongs to: its index among the call's callback
    /// arguments, from 0.
    public var slot: Int
    /// Its number within the slot, from 0, in the order the plugin made the invocations.
    public var sequence: UInt64
    /// The callback's arguments, typed by its declaration (an array's length comes folded into it).
    public var arguments: [Value]

    /// Creates an invocation.
    public init(slot: Int, sequence: UInt64, arguments: [Value]) {
        self.slot = slot
        self.sequence = sequence
        self.arguments = arguments
    }
}

/// A handler for a callback: runs for every invocation, on the thread that reads the space's channel
/// (keep it short; it must not wait for the space). Its return value answers a callback that returns
/// one (`null`, or throwing, gives the plugin the zero value).
public typealias CallbackHandler = @Sendable (_ arguments: [Value]) throws -> Value

/// An argument of a call: a value, or a callback in place of `cb:N`.
///
/// Literals work as they do for ``Value``; wrap a `Value` variable with ``value(_:)``.
///
/// ```swift
/// try await space.call("sort", "array.sort", [3, 1, 2], .callback { args -> Value in
///     .int(args[0].int64! < args[1].int64! ? -1 : 1)
/// })
/// ```
public struct Argument: Sendable {
    enum Kind: Sendable {
        case value(Value)
        case callback(arity: Int, CallbackHandler?)
    }
    let kind: Kind

    /// A plain value.
    public static func value(_ v: Value) -> Argument { Argument(kind: .value(v)) }

    /// A callback that returns nothing: `body` runs for every invocation.
    public static func callback(arity: Int = Value.declaredArity,
                                _ body: @escaping @Sendable (_ arguments: [Value]) throws -> Void) -> Argument {
        Argument(kind: .callback(arity: arity, { args in try body(args); return .null }))
    }

    /// A callback that returns a value: `body`'s result answers each invocation.
    public static func callback(arity: Int = Value.declaredArity,
                                _ body: @escaping @Sendable (_ arguments: [Value]) throws -> Value) -> Argument {
        Argument(kind: .callback(arity: arity, body))
    }

    /// A callback with no handler (`cb:N`): its invocations only go to the call's stream, and a
    /// returning one gets the zero value.
    public static func callback(arity: Int) -> Argument {
        Argument(kind: .callback(arity: arity, nil))
    }

    /// The wire value (`cb:N` for a callback).
    var wire: Value {
        switch kind {
        case .value(let v): return v
        case .callback(let arity, _): return .callback(arity: arity)
        }
    }
}

extension Argument: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(integerLiteral value: Int64) { kind = .value(.int(value)) }
    public init(floatLiteral value: Double) { kind = .value(.double(value)) }
    public init(stringLiteral value: String) { kind = .value(.string(value)) }
    public init(booleanLiteral value: Bool) { kind = .value(.bool(value)) }
    public init(nilLiteral: ()) { kind = .value(.null) }
    public init(arrayLiteral elements: Value...) { kind = .value(.array(elements)) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        kind = .value(.object(elements.map { Value.Field($0.0, $0.1) }))
    }
}

/// A call whose callbacks may outlive it: the result, and the stream of every invocation.
public struct CallbackCall: Sendable {
    /// What the function returned.
    public let result: Value
    /// Every invocation of the call's callbacks, in order per slot (handlers, if any, have already
    /// answered them). The stream ends when the plugin has released all of the call's callbacks, or
    /// they were cancelled; it fails with a ``SpaceError`` when a handler throws, an invocation
    /// could not be relayed (``SpaceError/Code/callbackFailed``), or the space stops or crashes.
    public let invocations: AsyncThrowingStream<CallbackInvocation, any Error>
    let cancelAction: @Sendable () -> Void

    /// Stops relaying the call's callbacks: later invocations return the zero value in the plugin
    /// (and are counted), and the stream ends.
    public func cancel() { cancelAction() }
}

/// What a relaying subscription passes on (the daemon forwards these to its client).
package enum RelayedCallback: Sendable {
    /// An invocation; when `reply` is non-zero the plugin thread waits for
    /// ``CallbackSubscription/answer(_:_:)`` with that token.
    case event(CallbackEvent)
    /// An invocation could not be relayed or answered as declared.
    case fault(CallbackFault)
    /// The host released the call's callbacks (`dropped` invocations after a cancel).
    case released
    /// The call's callbacks ended with an error (the call failed, or the space stopped or crashed).
    case ended(SpaceError)
}

/// The client side of one call's callbacks: handlers by slot and the stream of invocations, or —
/// for the daemon — a function that relays every event to somewhere else and answers later.
package final class CallbackSubscription: @unchecked Sendable {
    /// The call's request id (set when it is sent).
    var id: UInt32 = 0
    /// The channel the call went out on (set when it is sent); answers go back on it, so an answer
    /// for a host that is gone is dropped rather than given to a stranger.
    weak var channel: Channel?
    private let handlers: [CallbackHandler?]
    private let continuation: AsyncThrowingStream<CallbackInvocation, any Error>.Continuation?
    private let forward: (@Sendable (RelayedCallback) -> Void)?
    private let state = Mutex<(firstError: SpaceError?, finished: Bool)>((nil, false))

    /// A subscription with handlers by slot and, optionally, a stream; a consumer that stops
    /// reading the stream cancels the callbacks.
    init(handlers: [CallbackHandler?], continuation: AsyncThrowingStream<CallbackInvocation, any Error>.Continuation?) {
        self.handlers = handlers
        self.continuation = continuation
        self.forward = nil
        continuation?.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel() }
        }
    }

    /// A relaying subscription: every event goes to `forward`, answers come through ``answer(_:_:)``.
    package init(forward: @escaping @Sendable (RelayedCallback) -> Void) {
        self.handlers = []
        self.continuation = nil
        self.forward = forward
    }

    /// Stops relaying the call's callbacks (see ``CallbackCall/cancel()``). Before the call went
    /// out (no channel yet) there is nothing to cancel.
    package func cancel() { channel?.cancelCallbacks(id) }

    /// Answers a returning invocation relayed with reply token `token`.
    package func answer(_ token: UInt32, _ value: Value) {
        channel?.sendAnswer(token, value)
    }

    /// The first handler error or fault, if any.
    var firstError: SpaceError? { state.withLock { $0.firstError } }

    /// Runs the slot's handler and yields the invocation; returns the answer, or nil when it will
    /// come later through ``answer(_:_:)`` (relaying).
    func deliver(_ event: CallbackEvent) -> Value? {
        if let forward {
            forward(.event(event))
            return nil
        }
        var answer = Value.null
        if event.slot < handlers.count, let handler = handlers[event.slot] {
            do {
                answer = try handler(event.arguments)
            } catch {
                let why = (error as? SpaceError)?.message ?? "\(error)"
                fail(SpaceError(.callbackFailed, "the handler of callback \(event.slot) threw: \(why)"))
            }
        }
        continuation?.yield(CallbackInvocation(slot: event.slot, sequence: event.sequence, arguments: event.arguments))
        return answer
    }

    /// An invocation the host could not relay or answer as declared.
    func fault(_ fault: CallbackFault) {
        if let forward { return forward(.fault(fault)) }
        fail(SpaceError(.callbackFailed, fault.message))
    }

    /// Records a failure; the stream ends with it.
    func fail(_ error: SpaceError) {
        let first: Bool = state.withLock { s in
            if s.firstError == nil { s.firstError = error }
            if s.finished { return false }
            s.finished = true
            return true
        }
        if first { continuation?.finish(throwing: error) }
    }

    /// Ends the stream (released, or with the error that ended the call or the space).
    func finish(throwing error: SpaceError?) {
        let first: Bool = state.withLock { s in
            if s.finished { return false }
            s.finished = true
            return true
        }
        guard first else { return }
        if let forward {
            forward(error.map { .ended($0) } ?? .released)
        } else if let error {
            continuation?.finish(throwing: error)
        } else {
            continuation?.finish()
        }
    }
}
