public enum Operators {}
