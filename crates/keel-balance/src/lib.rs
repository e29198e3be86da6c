//! Client-side load balancing over a live instance list: strategies, outlier ejection, slow start, retry targeting.
