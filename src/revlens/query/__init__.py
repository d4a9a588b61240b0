"""Analytics queries: typed query models -> SQL built with sqlglot -> executed by the store -> Amplitude shapes."""
