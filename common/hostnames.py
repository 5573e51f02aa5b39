"""Host names that name no host: the service refuses them and the agent replaces them (Go's inventory does)."""

FORBIDDEN = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "localhost4",
        "localhost4.localdomain4",
        "localhost6",
        "localhost6.localdomain6",
    }
)
