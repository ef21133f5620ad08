// The lines `space call` prints (DESIGN.md, "CLI contract"): the result as JSON, and with `--json`
// one JSON object per line for each callback, the result, or the error. No I/O.
import SpaceWire

/// Formats what the CLI prints. Every line is compact JSON on one line (strings escape control
/// characters, so a message with a newline stays on its line).
public enum CLIOutput {
    /// `value` as compact JSON, as ``SpaceWire/Value/json`` writes it: bytes as `"hex:…"`, handles as
    /// `{"handle":N}`, callbacks as `"cb:N"`, NaN and infinities as `"NaN"`, `"Infinity"`,
    /// `"-Infinity"`. What `space call` prints without `--json`.
    public static func json(_ value: Value) -> String { value.json }

    /// `{"result":VALUE}`: the last line of `space call --json` when the call succeeded.
    public static func resultLine(_ value: Value) -> String {
        "{\"result\":" + json(value) + "}"
    }

    /// `{"callback":K,"args":[...]}`: one invocation of the call's K-th `cb:` argument (from 0).
    public static func callbackLine(slot: Int, arguments: [Value]) -> String {
        "{\"callback\":\(slot),\"args\":" + json(.array(arguments)) + "}"
    }

    /// `{"error":{"code":"...","message":"..."}}`: the last line of `space call --json` when it failed.
    public static func errorLine(_ error: SpaceError) -> String {
        var out = "{\"error\":{\"code\":"
        Value.appendJSONString(error.code.rawValue, to: &out)
        out += ",\"message\":"
        Value.appendJSONString(error.message, to: &out)
        out += "}}"
        return out
    }
}
