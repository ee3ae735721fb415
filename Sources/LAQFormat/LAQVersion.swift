/// laq's own version, recorded in provenance records (`"tool": "laq 0.1.0"`).
public enum LAQVersion {
    public static let string = "0.1.0"
}
