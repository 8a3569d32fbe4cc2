import { runS3StoreSuite } from './helpers/s3-servers.js';

// s3rver: a small S3 look-alike in Node; ignores If-None-Match.
runS3StoreSuite('s3rver', null);
