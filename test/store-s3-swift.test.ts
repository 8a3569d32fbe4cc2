import { runS3StoreSuite, swiftSkipReason } from './helpers/s3-servers.js';

// OpenStack Swift with s3api: a production object store that checks SigV4 signatures,
// answers If-None-Match with 501 and takes no aws-chunked bodies.
runS3StoreSuite('swift', swiftSkipReason());
