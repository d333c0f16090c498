/* tally error -> Kafka error (errors.h). */
#include "kafka/errors.h"

#include "lib/err.h"

int16_t kafka_error_from_tally(int code)
{
    switch (code) {
    case 0:
        return KAFKA_NONE;
    case TALLY_NOTLEADER:
    case TALLY_NOLEADER:
    case TALLY_LEADERSHIP_LOST: /* the write may have happened: Kafka says the same */
    case TALLY_SHUTDOWN:
        return KAFKA_NOT_LEADER_OR_FOLLOWER;
    case TALLY_UNAVAILABLE: /* a range this node backfills: read it elsewhere */
        return KAFKA_NOT_LEADER_OR_FOLLOWER;
    case TALLY_NOTFOUND:
        return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    case TALLY_OUT_OF_RANGE:
        return KAFKA_OFFSET_OUT_OF_RANGE;
    case TALLY_TOOLARGE:
        return KAFKA_MESSAGE_TOO_LARGE;
    case TALLY_TIMEOUT:
    case TALLY_BUSY:
        return KAFKA_REQUEST_TIMED_OUT;
    case TALLY_CORRUPT:
        return KAFKA_CORRUPT_MESSAGE;
    case TALLY_INVAL:
    case TALLY_PROTO:
        return KAFKA_INVALID_RECORD;
    case TALLY_NOSPACE:
    case TALLY_IOERR:
        return KAFKA_KAFKA_STORAGE_ERROR;
    case TALLY_SEQUENCE:
        return KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case TALLY_DUPLICATE:
        return KAFKA_DUPLICATE_SEQUENCE_NUMBER;
    case TALLY_EXISTS:
        return KAFKA_TOPIC_ALREADY_EXISTS;
    case TALLY_DENIED: /* the ACLs (most Kafka requests are about topics) */
        return KAFKA_TOPIC_AUTHORIZATION_FAILED;
    case TALLY_AUTH:
        return KAFKA_SASL_AUTHENTICATION_FAILED;
    default:
        return KAFKA_UNKNOWN_SERVER_ERROR;
    }
}
