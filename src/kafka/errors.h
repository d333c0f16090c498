/* Kafka's error codes (apache/kafka Errors.java; the numbers are the wire
 * values) that tally answers, and the mapping from tally's codes. */
#ifndef TALLY_KAFKA_ERRORS_H_
#define TALLY_KAFKA_ERRORS_H_

#include <stdint.h>

enum kafka_error {
    KAFKA_UNKNOWN_SERVER_ERROR = -1,
    KAFKA_NONE = 0,
    KAFKA_OFFSET_OUT_OF_RANGE = 1,
    KAFKA_CORRUPT_MESSAGE = 2,
    KAFKA_UNKNOWN_TOPIC_OR_PARTITION = 3,
    KAFKA_INVALID_FETCH_SIZE = 4,
    KAFKA_LEADER_NOT_AVAILABLE = 5,
    KAFKA_NOT_LEADER_OR_FOLLOWER = 6,
    KAFKA_REQUEST_TIMED_OUT = 7,
    KAFKA_MESSAGE_TOO_LARGE = 10,
    KAFKA_NETWORK_EXCEPTION = 13,
    KAFKA_INVALID_TOPIC_EXCEPTION = 17,
    KAFKA_RECORD_LIST_TOO_LARGE = 18,
    KAFKA_NOT_ENOUGH_REPLICAS = 19,
    KAFKA_INVALID_REQUIRED_ACKS = 21,
    KAFKA_UNSUPPORTED_FOR_MESSAGE_FORMAT = 43,
    KAFKA_UNSUPPORTED_VERSION = 35,
    KAFKA_TOPIC_ALREADY_EXISTS = 36,
    KAFKA_INVALID_PARTITIONS = 37,
    KAFKA_INVALID_REPLICATION_FACTOR = 38,
    KAFKA_NOT_CONTROLLER = 41,
    KAFKA_INVALID_REQUEST = 42,
    KAFKA_POLICY_VIOLATION = 44,
    KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    KAFKA_DUPLICATE_SEQUENCE_NUMBER = 46,
    KAFKA_INVALID_PRODUCER_EPOCH = 47,
    KAFKA_INVALID_CONFIG = 40,
    KAFKA_KAFKA_STORAGE_ERROR = 56,
    KAFKA_UNKNOWN_PRODUCER_ID = 59,
    KAFKA_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53,
    KAFKA_UNSUPPORTED_COMPRESSION_TYPE = 76,
    KAFKA_INVALID_RECORD = 87,
};

/* The Kafka error a client should see for tally error @code (0 -> 0).
 * Retriable conditions map onto Kafka's retriable errors, so that Kafka
 * clients refresh metadata and retry as they do against Kafka. */
int16_t kafka_error_from_tally(int code);

#endif
