-- Run once by the postgres image on its first start (compose.yaml): the databases of the
-- services other than auth, each owned by the mirrorhub user.
CREATE DATABASE vision OWNER mirrorhub;
CREATE DATABASE messaging OWNER mirrorhub;
