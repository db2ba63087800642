public enum StreamTesting {}
