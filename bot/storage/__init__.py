"""Storage on Redis: every key template in keys.py, the store in redis.py."""
