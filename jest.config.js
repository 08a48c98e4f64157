// Two jest projects: fast unit tests of src/ (jsdom, no server) and kernel
// integration tests that drive a real ipykernel over ZMQ (node, serial).
const tsJest = [
  'ts-jest',
  { tsconfig: 'test/tsconfig.json', diagnostics: { warnOnly: false } }
];

module.exports = {
  // Per-project testTimeout is ignored by jest 29: set it here.
  testTimeout: 120000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'jsdom',
      roots: ['<rootDir>/test/unit'],
      setupFiles: ['<rootDir>/test/unit/setup-jsdom.js'],
      transform: { '^.+\\.tsx?$': tsJest },
      moduleFileExtensions: ['ts', 'tsx', 'js', 'json']
    },
    {
      displayName: 'kernel',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/kernel'],
      transform: { '^.+\\.tsx?$': tsJest },
      moduleFileExtensions: ['ts', 'js', 'json']
    }
  ]
};
